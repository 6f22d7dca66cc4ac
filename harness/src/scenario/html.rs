//! The report people look at: one self-contained HTML page (no external resources), per
//! scenario the chains drawn as diagrams, the fleet table, the steps with their log lines and
//! statuses, expectations that did not hold and any snapshot diff.

use std::fmt::Write as _;

use super::batch::BatchEntry;
use super::catalogue::SnapshotState;
use super::report::ScenarioRun;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A tiny Markdown subset: fenced code blocks, `code`, **bold**, paragraphs and `- ` lists.
fn markdown(text: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    let mut paragraph = Vec::new();
    let inline = |line: &str| {
        let mut html = String::new();
        for (i, part) in esc(line).split('`').enumerate() {
            if i % 2 == 1 {
                let _ = write!(html, "<code>{part}</code>");
            } else {
                let bolds: Vec<&str> = part.split("**").collect();
                for (j, b) in bolds.iter().enumerate() {
                    if j % 2 == 1 {
                        let _ = write!(html, "<b>{b}</b>");
                    } else {
                        html.push_str(b);
                    }
                }
            }
        }
        html
    };
    // Inline markup may span lines: format the whole paragraph at once.
    let flush = |paragraph: &mut Vec<String>, out: &mut String| {
        if !paragraph.is_empty() {
            let _ = writeln!(out, "<p>{}</p>", inline(&paragraph.join(" ")));
            paragraph.clear();
        }
    };
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            flush(&mut paragraph, &mut out);
            out.push_str(if in_code { "</pre>\n" } else { "<pre class=\"chain\">" });
            in_code = !in_code;
        } else if in_code {
            let _ = writeln!(out, "{}", esc(line));
        } else if line.trim().is_empty() {
            flush(&mut paragraph, &mut out);
        } else if let Some(item) = line.strip_prefix("- ") {
            flush(&mut paragraph, &mut out);
            let _ = writeln!(out, "<ul><li>{}</li></ul>", inline(item));
        } else {
            paragraph.push(line.to_string());
        }
    }
    flush(&mut paragraph, &mut out);
    if in_code {
        out.push_str("</pre>\n");
    }
    out
}

fn diagrams(run: &ScenarioRun) -> String {
    let mut out = String::from("<div class=\"diagrams\">");
    for chain in &run.chains {
        let _ = write!(out, "<div class=\"diagram\"><div class=\"label\">{}</div>", esc(&chain.label));
        for (i, (id, subject, self_signed, trusted)) in chain.links.iter().enumerate() {
            if i > 0 {
                out.push_str("<div class=\"arrow\">&#8593; issued by</div>");
            }
            let class = match (trusted, self_signed) {
                (true, _) => "cert trusted",
                (false, true) => "cert selfsigned",
                _ => "cert",
            };
            let _ = write!(
                out,
                "<div class=\"{class}\"><b>{}</b><br>{}{}{}</div>",
                esc(id),
                esc(subject),
                if *self_signed { "<br><i>self-signed</i>" } else { "" },
                if *trusted { "<br><i>in the trust store</i>" } else { "" }
            );
        }
        out.push_str("</div>");
    }
    out.push_str("</div>");
    out
}

fn fleet_table(snapshot: &str) -> String {
    let section: Vec<&str> =
        snapshot.lines().skip_while(|l| *l != "## fleet").skip(1).take_while(|l| !l.starts_with("## ")).collect();
    format!("<pre class=\"fleet\">{}</pre>", esc(section.join("\n").trim()))
}

/// The whole page.
pub fn report(entries: &[BatchEntry], verifier: &str) -> String {
    let failed = entries.iter().filter(|e| e.failed()).count();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>mralab scenarios ({v})</title>\n<style>{CSS}</style>\n\
         <script>window.__errors = []; window.addEventListener('error', e => window.__errors.push(String(e.message)));</script>\n\
         </head><body>\n<h1>mralab scenarios <small>{v}</small></h1>\n<p>{} scenarios, {failed} failing.</p>\n<table class=\"summary\"><tr><th>scenario</th><th>expected</th><th>actual</th><th>snapshot</th><th>result</th></tr>\n",
        entries.len(),
        v = esc(verifier),
    );
    for e in entries {
        let (expected, actual) = e.expected_actual();
        let snapshot = e.result.as_ref().map(|(_, s)| s.label()).unwrap_or("-");
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td><a href=\"#{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{snapshot}</td><td>{}</td></tr>",
            if e.failed() { "bad" } else { "good" },
            esc(&expected),
            esc(&actual),
            e.verdict(),
            id = esc(&e.id),
        );
    }
    out.push_str("</table>\n");
    for e in entries {
        let _ = write!(
            out,
            "<section class=\"scenario\" id=\"{id}\" data-scenario=\"{id}\"><h2>{id}</h2>",
            id = esc(&e.id)
        );
        match &e.result {
            Err(err) => {
                let _ = write!(out, "<p class=\"bad\">could not run: {}</p>", esc(&err.to_string()));
            }
            Ok((run, state)) => {
                let _ = write!(out, "<h3>{}</h3>{}", esc(&run.title), markdown(&run.description));
                out.push_str("<h4>chains</h4>");
                out.push_str(&diagrams(run));
                out.push_str("<h4>fleet</h4>");
                out.push_str(&fleet_table(&run.snapshot));
                for step in &run.steps {
                    let _ = write!(
                        out,
                        "<details{}><summary>step {}: {} &#8594; {}</summary><pre>{}</pre></details>",
                        if step.mismatches.is_empty() { "" } else { " open" },
                        step.index,
                        esc(&step.title),
                        esc(&step.outcome),
                        esc(&step.lines.join("\n"))
                    );
                    for m in &step.mismatches {
                        let _ = write!(out, "<p class=\"bad\">expectation: {}</p>", esc(m));
                    }
                }
                if let SnapshotState::Changed(diff) = state {
                    let _ = write!(out, "<h4>snapshot diff</h4><pre class=\"diff\">{}</pre>", esc(diff));
                } else if *state == SnapshotState::New {
                    out.push_str("<p class=\"bad\">no snapshot yet</p>");
                }
            }
        }
        out.push_str("</section>\n");
    }
    out.push_str("<script>document.body.dataset.scenarios = document.querySelectorAll('section.scenario').length; document.body.dataset.errors = window.__errors.length;</script>\n</body></html>\n");
    out
}

const CSS: &str = "body{font-family:sans-serif;margin:2em;max-width:80em}pre{background:#f6f6f6;padding:.5em;overflow-x:auto;font-size:.8em}\
.summary td,.summary th{padding:.2em .6em;text-align:left;border-bottom:1px solid #ddd}.bad{color:#a00}.good td:last-child{color:#070}\
.diagrams{display:flex;flex-wrap:wrap;gap:1em}.diagram{display:flex;flex-direction:column-reverse;align-items:center;border:1px solid #ccc;padding:.5em}\
.diagram .label{font-weight:bold;order:-1}.cert{border:1px solid #444;border-radius:4px;padding:.3em;font-size:.8em;max-width:22em;background:#fff}\
.cert.trusted{background:#e6f7e6}.cert.selfsigned{background:#fbe9e9}.arrow{font-size:.7em;color:#666}.scenario{border-top:2px solid #333;margin-top:2em}";
