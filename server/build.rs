//! Rebuild when a migration is added: `sqlx::migrate!` embeds the files it
//! found at compile time, and Cargo does not watch the folders by itself.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
