//! oslo.policy rules and policy files from operators: parse or refuse, and a rule
//! that parses evaluates to an answer (no panic, no endless recursion).
#![no_main]

use std::collections::HashMap;

use glance_layers::policy::file;
use glance_layers::policy::rules::{Creds, Rule, RuleSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let creds = Creds {
        roles: vec!["member".into(), "reader".into()],
        attrs: HashMap::from([
            ("project_id".to_string(), "p".to_string()),
            ("is_admin".to_string(), "False".to_string()),
        ]),
    };
    let target = HashMap::from([
        ("project_id".to_string(), "p".to_string()),
        ("owner".to_string(), "p".to_string()),
        ("visibility".to_string(), "private".to_string()),
    ]);
    if Rule::parse(&text).is_ok() {
        // As the rule of a name, referring to itself and to the defaults.
        let rules =
            RuleSet::with_overrides([("fuzz", text.as_ref()), ("get_image", text.as_ref())])
                .expect("a rule that parses makes a rule set");
        let _ = rules.check("fuzz", &creds, &target);
        let _ = rules.check("get_image", &creds, &target);
    }
    // As a whole policy file (YAML lines or a JSON object).
    if let Ok(rules) = file::load(&text) {
        let _ = rules.check("add_image", &creds, &target);
    }
});
