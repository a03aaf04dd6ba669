fn main() {
    a9s_core::error::run("a9s-repmgr-reset", || a9s_repmgr_reset::run(std::env::args_os()))
}
