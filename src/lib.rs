pub mod db;
pub mod service;
