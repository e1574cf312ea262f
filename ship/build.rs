// The migrations are embedded at compile time (`embed_migrations!`); rebuild when a folder is added.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
