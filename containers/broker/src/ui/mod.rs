pub mod http;
pub mod jobs;
