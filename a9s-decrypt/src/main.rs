fn main() {
    a9s_core::error::run("a9s-decrypt", || a9s_decrypt::run(std::env::args_os()))
}
