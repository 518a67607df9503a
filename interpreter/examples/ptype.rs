//! Development aid until `layoutdump types` exists: prints types whose name starts with
//! the given prefixes, with their fields and variants.
use layoutdump_interpreter::dwarf::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dbg = DebugInfo::load(std::path::Path::new(&args[1])).unwrap();
    for prefix in &args[2..] {
        let mut names: Vec<_> = dbg
            .index()
            .type_names()
            .filter(|n| n.starts_with(prefix.as_str()))
            .cloned()
            .collect();
        names.sort();
        for n in names.iter().take(8) {
            let t = dbg.ty(dbg.type_named(n).unwrap()).unwrap();
            println!("{} size={}", t.name, t.size);
            if let TypeKind::Struct { fields, variants } = &t.kind {
                for f in fields {
                    println!(
                        "   .{} @{} : {}",
                        f.name,
                        f.offset,
                        f.ty.and_then(|t| dbg.ty(t).ok())
                            .map_or("?".into(), |t| t.name.to_string())
                    );
                }
                if let Some(vp) = variants {
                    if let Some(d) = &vp.discr {
                        println!("   discr {} @{}", d.name, d.offset);
                    }
                    for v in &vp.variants {
                        println!(
                            "   variant {:?} {} line={:?} : {}",
                            v.discr_value,
                            v.field.name,
                            v.field.decl_line,
                            v.field
                                .ty
                                .and_then(|t| dbg.ty(t).ok())
                                .map_or("?".into(), |t| t.name.to_string())
                        );
                    }
                }
            }
        }
    }
}
