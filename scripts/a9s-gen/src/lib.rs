//! Every program of the workspace, with its clap definition and man page: the one list that the man page
//! test, the completion generator, scripts/install, scripts/uninstall and scripts/release use
//! (the scripts through `a9s-gen list`).

pub struct Program {
    pub name: &'static str,
    pub command: fn() -> clap::Command,
    pub man_page: fn() -> String,
}

pub fn all() -> Vec<Program> {
    vec![
        Program { name: "a9s-ls", command: a9s_ls::command, man_page: a9s_ls::man_page },
        Program { name: "a9s-fetch", command: a9s_fetch::command, man_page: a9s_fetch::man_page },
        Program { name: "a9s-cat-parts", command: a9s_cat_parts::command, man_page: a9s_cat_parts::man_page },
        Program { name: "a9s-decrypt", command: a9s_decrypt::command, man_page: a9s_decrypt::man_page },
        Program { name: "a9s-pgrestore", command: a9s_pgrestore::command, man_page: a9s_pgrestore::man_page },
        Program { name: "a9s-repmgr-reset", command: a9s_repmgr_reset::command, man_page: a9s_repmgr_reset::man_page },
    ]
}
