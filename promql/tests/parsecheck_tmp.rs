#[test]
fn parsecheck() {
    let s = std::fs::read_to_string("/work/shared/conformance/promql-testdata/EVAL_INDEX.tsv").unwrap();
    let mut bad = 0;
    for line in s.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let e = f[6];
        if let Err(err) = promql_parser::parser::parse(e) {
            bad += 1;
            println!("FAIL {}:{} nh={} {} => {}", f[0], f[1], f[4], e, err);
        }
    }
    println!("bad={bad}");
}
