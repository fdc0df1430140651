//! The agent's modules stay layered: no module imports its way back to
//! itself (the reader is crates/module-graph).

#[test]
fn no_module_imports_its_way_back_to_itself() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    module_graph::assert_no_cycles(&src, ("node::leave", "agent_api::client"));
}
