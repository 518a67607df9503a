//! Development probe: loads a binary's DWARF and prints what the index finds for a name.
use layoutdump_interpreter::dwarf::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let t = std::time::Instant::now();
    let dbg = DebugInfo::load(std::path::Path::new(&args[1])).unwrap();
    eprintln!(
        "indexed in {:?}: {} type names",
        t.elapsed(),
        dbg.index().type_names().count()
    );
    for name in &args[2..] {
        if let Some(addr) = name.strip_prefix("fn@") {
            let a = u64::from_str_radix(addr.trim_start_matches("0x"), 16).unwrap();
            println!("{:?}", dbg.function_at(LinkAddr(a)));
            continue;
        }
        if let Some(v) = name.strip_prefix("var:") {
            println!("{:#?}", dbg.variables(v));
            continue;
        }
        let mut names: Vec<_> = dbg
            .index()
            .type_names()
            .filter(|n| n.starts_with(name.as_str()))
            .take(10)
            .collect();
        names.sort();
        for n in names {
            let t = dbg.ty(dbg.type_named(n).unwrap()).unwrap();
            println!("{} size={} {:?}", t.name, t.size, t.kind);
        }
    }
}
