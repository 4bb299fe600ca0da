use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let recycle: usize = args[1].parse().unwrap();
    let n: usize = args[2].parse().unwrap();
    let threads: usize = args[3].parse().unwrap();
    let dir = format!("/tmp/walbench-data-{}", std::process::id());
    let mut o = rocksdb::Options::default();
    o.create_if_missing(true);
    o.set_recycle_log_file_num(recycle);
    o.set_bytes_per_sync(1 << 20);
    if args.len() > 4 { o.set_write_buffer_size(args[4].parse().unwrap()); }
    let db = std::sync::Arc::new(rocksdb::DB::open(&o, &dir).unwrap());
    let body = vec![7u8; 1024];
    let t0 = Instant::now();
    let hs: Vec<_> = (0..threads).map(|t| {
        let db = db.clone(); let body = body.clone();
        std::thread::spawn(move || {
            let mut lat = Vec::with_capacity(n);
            let mut w = rocksdb::WriteOptions::default(); w.set_sync(true);
            for i in 0..n {
                let s = Instant::now();
                db.put_opt(format!("k{t}-{i:010}"), &body, &w).unwrap();
                lat.push(s.elapsed().as_micros() as u64);
            }
            lat
        })}).collect();
    let mut lat: Vec<u64> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let el = t0.elapsed();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len()-1)];
    println!("recycle={recycle} threads={threads} n={} ops/s={:.0} p50={}us p99={}us p999={}us max={}us", lat.len(), lat.len() as f64/el.as_secs_f64(), p(0.5), p(0.99), p(0.999), lat[lat.len()-1]);
    drop(db);
    std::fs::remove_dir_all(&dir).ok();
}
