//! The connection options as psql spells them (`-d -h -p -U`), for every program that connects.

/// The connection options, as psql spells them. Flatten into a program's arguments with
/// `#[command(flatten)] conn: ConnArgs`, and give that command `#[command(disable_help_flag = true)]` plus a
/// long-only help flag (see [`help_flag`]) so that `-h` is the host, as in psql.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnArgs {
    /// Database name, conninfo string or postgresql:// URI [env: PGDATABASE]
    #[arg(
        short = 'd',
        long = "dbname",
        value_name = "DBNAME",
        long_help = "Database to connect to first: a name (`postgres`), a libpq conninfo string \
                     (`host=10.0.0.5 port=5432 user=postgres dbname=postgres sslmode=require`) or a URI \
                     (`postgresql://postgres@10.0.0.5:5432/postgres?sslmode=require`). Values in a conninfo or \
                     URI yield to -h, -p and -U when both are given, and take precedence over the PG* \
                     environment. Default: $PGDATABASE, else the user name."
    )]
    pub dbname: Option<String>,

    /// Server host name, or a Unix-socket directory if it starts with / [env: PGHOST]
    #[arg(
        short = 'h',
        long = "host",
        value_name = "HOST",
        long_help = "Server host name or IP address; a value starting with / is the directory of the server's \
                     Unix socket. Default: $PGHOST, else the Unix socket in /var/run/postgresql (Debian's libpq \
                     default)."
    )]
    pub host: Option<String>,

    /// Server port [env: PGPORT] [default: 5432]
    #[arg(
        short = 'p',
        long = "port",
        value_name = "PORT",
        long_help = "Server port, also the number in the Unix socket's name (.s.PGSQL.PORT). \
                     Default: $PGPORT, else 5432."
    )]
    pub port: Option<String>,

    /// User name to connect as [env: PGUSER]
    #[arg(
        short = 'U',
        long = "username",
        value_name = "USER",
        long_help = "PostgreSQL user to connect as. Default: $PGUSER, else the operating-system user name. \
                     The password comes from $PGPASSWORD or the password file ($PGPASSFILE, else ~/.pgpass); \
                     there is no password option (one in a -d conninfo or URI works, but shows in the process \
                     list)."
    )]
    pub username: Option<String>,
}

/// A `--help` flag without a short form, for commands that give `-h` to the host (as psql does).
pub fn help_flag() -> clap::Arg {
    clap::Arg::new("help").long("help").help("Print help").action(clap::ArgAction::Help)
}
