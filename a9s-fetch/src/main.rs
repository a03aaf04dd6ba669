fn main() {
    a9s_core::error::run("a9s-fetch", || a9s_fetch::run(std::env::args_os()))
}
