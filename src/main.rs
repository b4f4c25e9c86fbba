fn main() {
    let r = simclr::bench::run(&simclr::bench::BenchConfig { batch: 256, size: 24, warmup: 3, steps: 10, infer_batch: 1024 }).unwrap();
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
}
