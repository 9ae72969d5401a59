//! The JSON-Schema documents of `/v2/schemas/...`, as Glance serves them. Clients
//! build their models from these (glanceclient validates and diffs with the image
//! schema; Nova reads `is_base`), so they are served verbatim.

macro_rules! schemas {
    ($($name:literal => $file:literal),+ $(,)?) => {
        /// Every schema path under `/v2/schemas/`.
        pub const NAMES: &[&str] = &[$($name),+];

        /// The document at `/v2/schemas/{name}`.
        pub fn document(name: &str) -> Option<&'static [u8]> {
            match name {
                $($name => Some(include_bytes!(concat!("schemas/", $file))),)+
                _ => None,
            }
        }
    };
}

schemas! {
    "image" => "image.json",
    "images" => "images.json",
    "member" => "member.json",
    "members" => "members.json",
    "task" => "task.json",
    "tasks" => "tasks.json",
    "metadefs/namespace" => "metadefs_namespace.json",
    "metadefs/namespaces" => "metadefs_namespaces.json",
    "metadefs/resource_type" => "metadefs_resource_type.json",
    "metadefs/resource_types" => "metadefs_resource_types.json",
    "metadefs/property" => "metadefs_property.json",
    "metadefs/properties" => "metadefs_properties.json",
    "metadefs/object" => "metadefs_object.json",
    "metadefs/objects" => "metadefs_objects.json",
    "metadefs/tag" => "metadefs_tag.json",
    "metadefs/tags" => "metadefs_tags.json",
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_document_is_json_named_after_its_path() {
        for name in super::NAMES {
            let doc: serde_json::Value =
                serde_json::from_slice(super::document(name).unwrap()).unwrap();
            // Glance names the resource-type documents after the association.
            let expected = match name.rsplit('/').next().unwrap() {
                "resource_type" => "resource_type_association",
                "resource_types" => "resource_type_associations",
                other => other,
            };
            assert_eq!(doc["name"], expected, "{name}");
        }
    }
}
