fn main() {
    let p = std::env::args().nth(1).unwrap();
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
