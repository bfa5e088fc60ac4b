//! Prints what a store's sled index holds: its size on disk, and per tree the number of keys and
//! the bytes of their keys and values (what a copy must hold). For BENCHMARKS.md's index numbers:
//! `cargo run --release -p crowsnest-store --example sledstat -- <data_dir>/index` (on a copy, or
//! with the store stopped: sled locks its directory).

fn main() {
    let Some(p) = std::env::args().nth(1) else {
        eprintln!("usage: sledstat <sled directory>");
        std::process::exit(2);
    };
    let db = sled::Config::new().path(&p).open().unwrap();
    println!("size_on_disk {}", db.size_on_disk().unwrap());
    for name in db.tree_names() {
        let t = db.open_tree(&name).unwrap();
        let (mut n, mut b, mut mx) = (0u64, 0u64, 0usize);
        for kv in t.iter() {
            let (k, v) = kv.unwrap();
            n += 1;
            b += (k.len() + v.len()) as u64;
            mx = mx.max(v.len());
        }
        println!("{:?} keys {} bytes {} maxval {}", String::from_utf8_lossy(&name), n, b, mx);
    }
}
