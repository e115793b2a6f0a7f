//! List what a tensor file holds: `cargo run -p samplediff-formats --example inspect -- cond.pt:0`.

fn main() {
    let mut status = 0;
    for spec in std::env::args().skip(1) {
        let start = std::time::Instant::now();
        match samplediff_formats::load_path(&spec) {
            Ok(file) => {
                println!("{spec}: {} tensors, read in {:.3?}", file.tensors.len(), start.elapsed());
                for t in &file.tensors {
                    println!("  {:<40} {:<8} {:?}", t.name, t.dtype.name(), t.shape);
                }
                for (k, v) in &file.metadata {
                    let v: String = v.chars().take(100).collect();
                    println!("  [{k}] {v}");
                }
            }
            Err(e) => {
                eprintln!("{spec}: {e}");
                status = 2;
            }
        }
    }
    std::process::exit(status);
}
