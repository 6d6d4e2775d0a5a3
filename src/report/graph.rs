//! `kairos graph`: the workflow as Mermaid or Graphviz DOT, or as JSON for programs.
//!
//! Node shapes show the kind (task: box, branch: diamond, fork and join: trapezia, approval:
//! hexagon); branch arms are labelled `then` / `else`, fork and join edges `fork` / `join`;
//! a dashed edge is a data reference (an expression reads the node) without `needs`. A loop
//! or a `workflow:` call is a cluster (Mermaid `subgraph`, DOT `cluster_`) holding its own
//! node and its sub-graph, whose nodes are named after it (`n3_0`).

use crate::workflow::{NodeIdx, NodeKind, Workflow};
use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeKind {
    Needs,
    Then,
    Else,
    Fork,
    Join,
    Data,
}

impl EdgeKind {
    /// The name `--format json` gives the edge.
    fn name(self) -> &'static str {
        match self {
            EdgeKind::Needs => "needs",
            EdgeKind::Then => "then",
            EdgeKind::Else => "else",
            EdgeKind::Fork => "fork",
            EdgeKind::Join => "join",
            EdgeKind::Data => "data",
        }
    }

    fn label(self) -> Option<&'static str> {
        match self {
            EdgeKind::Needs | EdgeKind::Data => None,
            EdgeKind::Then => Some("then"),
            EdgeKind::Else => Some("else"),
            EdgeKind::Fork => Some("fork"),
            EdgeKind::Join => Some("join"),
        }
    }
}

/// Every edge `(from, to, kind)`: `to` waits for `from`. In node order, then dependency order.
pub fn edges(workflow: &Workflow) -> Vec<(NodeIdx, NodeIdx, EdgeKind)> {
    let mut out = Vec::with_capacity(workflow.edge_count());
    for (i, node) in workflow.nodes.iter().enumerate() {
        let to = i as NodeIdx;
        for &from in &node.deps {
            let kind = match (&workflow.nodes[from as usize].kind, &node.kind) {
                (NodeKind::Branch { then, .. }, _) if then.contains(&to) => EdgeKind::Then,
                (NodeKind::Branch { otherwise, .. }, _) if otherwise.contains(&to) => {
                    EdgeKind::Else
                }
                (NodeKind::Fork(children), _) if children.contains(&to) => EdgeKind::Fork,
                (_, NodeKind::Join(parents)) if parents.contains(&from) => EdgeKind::Join,
                _ => EdgeKind::Needs,
            };
            out.push((from, to, kind));
        }
        out.extend(node.after.iter().map(|&from| (from, to, EdgeKind::Data)));
    }
    out
}

pub fn mermaid(workflow: &Workflow) -> String {
    let mut s = String::from("flowchart TD\n");
    mermaid_level(workflow, "n", 1, &mut s);
    s
}

/// The sub-graph a loop or a call holds, and how its cluster is titled.
fn inner(node: &crate::workflow::Node) -> Option<(&Workflow, String)> {
    match &node.kind {
        NodeKind::Loop(l) => Some((
            &l.body,
            if l.agent {
                format!("{} (agent, at most {} turns)", node.id, l.max_iterations)
            } else {
                format!("{} (loop, at most {})", node.id, l.max_iterations)
            },
        )),
        NodeKind::Call(c) => Some((&c.callee, format!("{} (calls {})", node.id, c.file.value))),
        _ => None,
    }
}

/// One level of the graph: its nodes (a loop or a call as a cluster holding its own node and
/// its sub-graph's, named `PREFIX{i}_`) and its edges.
fn mermaid_level(workflow: &Workflow, prefix: &str, depth: usize, s: &mut String) {
    let pad = "  ".repeat(depth);
    for (i, node) in workflow.nodes.iter().enumerate() {
        let label = format!("{}<br/><i>{}</i>", mermaid_escape(&node.id), node.label());
        let (open, close) = match node.kind {
            NodeKind::Task(_) => ("[\"", "\"]"),
            NodeKind::Branch { .. } => ("{\"", "\"}"),
            NodeKind::Fork(_) => ("[/\"", "\"\\]"),
            NodeKind::Join(_) => ("[\\\"", "\"/]"),
            NodeKind::Approval { .. } => ("{{\"", "\"}}"),
            NodeKind::Loop(_) | NodeKind::Call(_) => ("([\"", "\"])"),
        };
        match inner(node) {
            Some((sub, title)) => {
                let _ = writeln!(
                    s,
                    "{pad}subgraph c{prefix}{i}[\"{}\"]",
                    mermaid_escape(&title)
                );
                let _ = writeln!(s, "{pad}  {prefix}{i}{open}{label}{close}");
                mermaid_level(sub, &format!("{prefix}{i}_"), depth + 1, s);
                let _ = writeln!(s, "{pad}end");
            }
            None => {
                let _ = writeln!(s, "{pad}{prefix}{i}{open}{label}{close}");
            }
        }
    }
    for (from, to, kind) in edges(workflow) {
        let arrow = match (kind, kind.label()) {
            (EdgeKind::Data, _) => "-.->".to_string(),
            (_, Some(label)) => format!("-->|{label}|"),
            (_, None) => "-->".to_string(),
        };
        let _ = writeln!(s, "{pad}{prefix}{from} {arrow} {prefix}{to}");
    }
}

fn mermaid_escape(text: &str) -> String {
    text.replace('&', "#amp;")
        .replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

pub fn dot(workflow: &Workflow) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph \"{}\" {{", dot_escape(&workflow.name));
    s.push_str("  node [fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\"];\n");
    dot_level(workflow, "n", 1, &mut s);
    s.push_str("}\n");
    s
}

/// One level of the graph, as [`mermaid_level`]: a loop or a call is a `cluster_` subgraph.
fn dot_level(workflow: &Workflow, prefix: &str, depth: usize, s: &mut String) {
    let pad = "  ".repeat(depth);
    for (i, node) in workflow.nodes.iter().enumerate() {
        let shape = match node.kind {
            NodeKind::Task(_) => "box",
            NodeKind::Branch { .. } => "diamond",
            NodeKind::Fork(_) => "trapezium",
            NodeKind::Join(_) => "invtrapezium",
            NodeKind::Approval { .. } => "hexagon",
            NodeKind::Loop(_) | NodeKind::Call(_) => "oval",
        };
        let line = format!(
            "{prefix}{i} [label=\"{}\\n({})\", shape={shape}];",
            dot_escape(&node.id),
            node.label()
        );
        match inner(node) {
            Some((sub, title)) => {
                let _ = writeln!(s, "{pad}subgraph cluster_{prefix}{i} {{");
                let _ = writeln!(s, "{pad}  label=\"{}\";", dot_escape(&title));
                let _ = writeln!(s, "{pad}  {line}");
                dot_level(sub, &format!("{prefix}{i}_"), depth + 1, s);
                let _ = writeln!(s, "{pad}}}");
            }
            None => {
                let _ = writeln!(s, "{pad}{line}");
            }
        }
    }
    for (from, to, kind) in edges(workflow) {
        let attrs = match (kind, kind.label()) {
            (EdgeKind::Data, _) => " [style=dashed]".to_string(),
            (_, Some(label)) => format!(" [label=\"{label}\"]"),
            (_, None) => String::new(),
        };
        let _ = writeln!(s, "{pad}{prefix}{from} -> {prefix}{to}{attrs};");
    }
}

/// The graph both renderings draw, as data: every node (id, kind, tool for a task) in
/// declaration order and every edge (`to` waits for `from`), `kind` one of `needs`, `then`,
/// `else`, `fork`, `join` or `data` (an expression reads the node).
pub fn json(workflow: &Workflow) -> serde_json::Value {
    let nodes: Vec<serde_json::Value> = workflow
        .nodes
        .iter()
        .map(|node| {
            let mut v = serde_json::json!({
                "id": node.id.as_str(),
                "kind": node.kind.name(),
                "tool": match &node.kind {
                    NodeKind::Task(t) => Some(t.tool.spec().name),
                    _ => None,
                },
            });
            if let Some((sub, _)) = inner(node) {
                v["graph"] = json(sub);
            }
            v
        })
        .collect();
    let edges: Vec<serde_json::Value> = edges(workflow)
        .into_iter()
        .map(|(from, to, kind)| {
            serde_json::json!({
                "from": workflow.nodes[from as usize].id.as_str(),
                "to": workflow.nodes[to as usize].id.as_str(),
                "kind": kind.name(),
            })
        })
        .collect();
    serde_json::json!({ "workflow": workflow.name, "nodes": nodes, "edges": edges })
}

fn dot_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
