fn main() {
    a9s_core::error::run("a9s-pgrestore", || a9s_pgrestore::run(std::env::args_os()))
}
