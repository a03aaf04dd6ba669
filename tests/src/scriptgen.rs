//! Random psql scripts for the differential test of a9s-pgrestore against psql: every quoting form, nested
//! comments, COPY blocks with good and bad rows, standard_conforming_strings switched in every way the server
//! reports, known and unknown meta-commands (never `\!`: nothing here may run a shell), psql variables.
//!
//! Deterministic from a seed, so a failing script can be made again from the seed the test prints.

/// A small deterministic generator (xorshift64*): no dependency, same scripts on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// The tables every script starts from (made by the test before each run).
pub const SETUP: &str = "DROP TABLE IF EXISTS t, important, u CASCADE; CREATE TABLE t (a int, b text); \
                         CREATE TABLE important (i int); INSERT INTO important VALUES (1);";

/// Literals in every quoting form; some change meaning with standard_conforming_strings.
const LITERALS: &[&str] = &[
    "'plain'",
    "'it''s'",
    "E'esc\\'aped'",
    "'back\\\\slash'",
    "'C:\\'",
    "$$dollar; 'quoted'$$",
    "$q$tag $$ inside$q$",
    "U&'\\0041BC'",
    "'semi;colon'",
    "'multi\nline'",
    "'con' 'tinued'",
    "'con'\n'tinued'",
    "B'1010'::text",
    "X'1F'::text",
    "N'national'",
    "'/* not a comment */'",
    "'-- not a comment'",
    "\"t\".b",
];

const ROWS_GOOD: &[&str] = &["1\tone", "2\t\\N", "3\ttab\\there", "4\tback\\\\slash", "5\tsemi;colon", "6\t'q'"];
const ROWS_BAD: &[&str] = &["x\tnot an int", "7", "8\ta\textra"];

/// One random script of about `pieces` pieces.
pub fn script(seed: u64, pieces: usize) -> String {
    let mut r = Rng::new(seed);
    let mut s = String::new();
    let mut n = 0;
    let mut restricted = false;
    for _ in 0..pieces {
        n += 1;
        // Pieces that make a9s-pgrestore stop (unknown meta-commands, psql variables, a refused COPY, …) are
        // rarer, so that most scripts run to their end and are compared whole.
        let kind = if r.chance(6) {
            [10, 12, 13, 14, 15, 20, 21, 23][r.below(8)]
        } else {
            [0, 1, 2, 3, 4, 5, 6, 6, 7, 7, 8, 9, 11, 16, 17, 18, 19, 22][r.below(18)]
        };
        match kind {
            0..=4 => {
                let lit = r.pick(LITERALS);
                s += &format!("INSERT INTO t VALUES ({n}, {lit});\n");
            }
            5 => s += "INSERT INTO t VALUES (100, 'C:\\'); DROP TABLE important; --');\n",
            6 => {
                s += r.pick(&[
                    "SET standard_conforming_strings = off;\n",
                    "SET standard_conforming_strings = on;\n",
                    "SELECT set_config('standard_conforming_strings', 'off', false);\n",
                    "SELECT pg_catalog.set_config('standard_conforming_strings', 'on', false);\n",
                    "RESET standard_conforming_strings;\n",
                    "DO $$BEGIN PERFORM set_config('standard_conforming_strings', 'off', false); END$$;\n",
                    "SET standard_conforming_strings = off; INSERT INTO t VALUES (200, 'same\\'line');\n",
                ])
            }
            7 => {
                let head = r.pick(&["COPY t (a, b) FROM stdin;", "COPY t FROM STDIN;", "copy t from stdout;"]);
                s += head;
                s.push('\n');
                for _ in 0..r.below(4) {
                    let row = if r.chance(15) { r.pick(ROWS_BAD) } else { r.pick(ROWS_GOOD) };
                    s += row;
                    s.push('\n');
                }
                s += if r.chance(10) { "\\.\r\n" } else { "\\.\n" };
            }
            8 => {
                s += r.pick(&[
                    "-- a comment; with 'quotes'\n",
                    "/* outer /* nested; */ still; */ SELECT 1;\n",
                    "SELECT 1 /* trailing; */;\n",
                    "SELECT 2; -- and a comment 'unclosed\n",
                ])
            }
            9 => s += &format!("SELECT {n}; INSERT INTO t VALUES ({n}, 'two on a line');\n"),
            10 => {
                s += r.pick(&["\\encoding UTF8\n", "\\c\n", "\\connect\n", "\\encoding NO_SUCH_ENC\n", "\\encoding\n"])
            }
            11 => {
                if restricted {
                    s += "\\unrestrict k1\n";
                    restricted = false;
                } else {
                    s += "\\restrict k1\n";
                    restricted = true;
                }
            }
            12 => {
                s += r.pick(&[
                    "\\echo hello\n",
                    "\\set v 1\n",
                    "\\foo\n",
                    "\\g\n",
                    "\\r\n",
                    "\\.\n",
                    "\\unrestrict wrong\n",
                    "\\restrict\n",
                ])
            }
            13 => s += "\\if false\nDROP TABLE important;\n\\endif\n",
            14 => s += "\\copy t from stdin\n9\tdata line\n\\.\n",
            15 => s += r.pick(&["SELECT :'DBNAME';\n", "SELECT :{?x};\n", "SELECT 1::int;\n", "SELECT 'a:b';\n"]),
            16 => {
                s += r.pick(&[
                    "INSERT INTO nosuch VALUES (1);\n",
                    "SELECT 1/0;\n",
                    "BEGIN;\nINSERT INTO t VALUES (300, 'in tx');\nCOMMIT;\n",
                    "BEGIN;\nINSERT INTO t VALUES (301, 'rolled back');\nROLLBACK;\n",
                ])
            }
            17 => s += "DROP TABLE important;\n",
            18 => s += "SELECT 'unterminated\n;\n'; INSERT INTO t VALUES (400, 'after');\n",
            19 => s += "CREATE TABLE u (x int);\nCOPY u FROM stdin;\n1\n2\n\\.\n",
            20 => s += "COPY nosuch (a) FROM stdin;\n1\tx\n\\.\n",
            21 => s += "SELECT 1 \\echo inline\n",
            22 => s += "INSERT INTO t VALUES (500, 'x')\n\\encoding UTF8\n;\n",
            _ => s += "SELECT 1\\; INSERT INTO t VALUES (600, 'compound');\n",
        }
    }
    if restricted && r.chance(70) {
        s += "\\unrestrict k1\n";
    }
    s
}
