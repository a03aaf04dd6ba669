fn main() {
    a9s_core::error::run("a9s-cat-parts", || a9s_cat_parts::run(std::env::args_os()))
}
