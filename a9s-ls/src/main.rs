fn main() {
    a9s_core::error::run("a9s-ls", || a9s_ls::run(std::env::args_os()))
}
