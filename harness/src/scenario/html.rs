//! The report people look at: one self-contained HTML page (no external resources), per
//! scenario the chains drawn as diagrams, the fleet table, the steps with their log lines and
//! statuses, expectations that did not hold and any snapshot diff.

use std::fmt::Write as _;

use super::batch::BatchEntry;
use super::catalogue::SnapshotState;
use super::compare::Known;
use super::report::ScenarioRun;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A scenario description as HTML: CommonMark (pulldown-cmark), with any raw HTML in the text
/// shown as text rather than interpreted, so a description cannot inject markup or script.
fn markdown(text: &str) -> String {
    use pulldown_cmark::{Event, Parser};
    let events = Parser::new(text).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        other => other,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

/// A unified diff as HTML: removed and added lines coloured, and within a removed line and the
/// added line that replaces it, the characters that differ highlighted, so a change at the end
/// of a long line is visible without scrolling. Lines wrap.
fn diff_html(diff: &str) -> String {
    let lines: Vec<&str> = diff.lines().collect();
    let mut out = String::from("<pre class=\"diff\">");
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let is_removed = line.starts_with('-') && !line.starts_with("---");
        // A run of removed lines followed by as many added lines: pair them for in-line marks.
        if is_removed {
            let removed: Vec<&str> =
                lines[i..].iter().take_while(|l| l.starts_with('-') && !l.starts_with("---")).copied().collect();
            let added: Vec<&str> = lines[i + removed.len()..]
                .iter()
                .take_while(|l| l.starts_with('+') && !l.starts_with("+++"))
                .copied()
                .collect();
            for (k, old) in removed.iter().enumerate() {
                match added.get(k) {
                    Some(new) => {
                        let (old_html, _) = inline_marks(&old[1..], &new[1..]);
                        let _ = write!(out, "<span class=\"del\">-{old_html}</span>");
                    }
                    None => {
                        let _ = write!(out, "<span class=\"del\">{}</span>", esc(old));
                    }
                }
            }
            for (k, new) in added.iter().enumerate() {
                match removed.get(k) {
                    Some(old) => {
                        let (_, new_html) = inline_marks(&old[1..], &new[1..]);
                        let _ = write!(out, "<span class=\"add\">+{new_html}</span>");
                    }
                    None => {
                        let _ = write!(out, "<span class=\"add\">{}</span>", esc(new));
                    }
                }
            }
            i += removed.len() + added.len();
            continue;
        }
        let class = if line.starts_with('+') && !line.starts_with("+++") {
            "add"
        } else if line.starts_with("@@") || line.starts_with("---") || line.starts_with("+++") {
            "hunk"
        } else {
            "same"
        };
        let _ = write!(out, "<span class=\"{class}\">{}</span>", esc(line));
        i += 1;
    }
    out.push_str("</pre>");
    out
}

/// `old` and `new` as HTML with the characters only one of them has wrapped in `<mark>`.
fn inline_marks(old: &str, new: &str) -> (String, String) {
    use similar::{ChangeTag, TextDiff};
    let diff = TextDiff::from_chars(old, new);
    let (mut old_html, mut new_html) = (String::new(), String::new());
    for change in diff.iter_all_changes() {
        let text = esc(change.value());
        match change.tag() {
            ChangeTag::Equal => {
                old_html.push_str(&text);
                new_html.push_str(&text);
            }
            ChangeTag::Delete => {
                let _ = write!(old_html, "<mark>{text}</mark>");
            }
            ChangeTag::Insert => {
                let _ = write!(new_html, "<mark>{text}</mark>");
            }
        }
    }
    (old_html.replace("</mark><mark>", ""), new_html.replace("</mark><mark>", ""))
}

fn diagrams(run: &ScenarioRun) -> String {
    let mut out = String::from("<div class=\"diagrams\">");
    for chain in &run.chains {
        let _ = write!(out, "<div class=\"diagram\"><div class=\"label\">{}</div>", esc(&chain.label));
        for (i, link) in chain.links.iter().enumerate() {
            if i > 0 {
                out.push_str("<div class=\"arrow\">&#8593; issued by</div>");
            }
            let class = match (&link.failed, link.trusted, link.self_signed) {
                (Some(_), _, _) => "cert failed",
                (None, true, _) => "cert trusted",
                (None, false, true) => "cert selfsigned",
                _ => "cert",
            };
            let failed = link
                .failed
                .as_ref()
                .map(|why| format!("<br><span class=\"why\">verification failed here: {}</span>", esc(why)))
                .unwrap_or_default();
            let _ = write!(
                out,
                "<div class=\"{class}\"{data}><b>{}</b><br>{}{}{}{failed}</div>",
                esc(&link.id),
                esc(&link.subject),
                if link.self_signed { "<br><i>self-signed</i>" } else { "" },
                if link.trusted { "<br><i>in the trust store</i>" } else { "" },
                data = if link.failed.is_some() { " data-failed=\"true\"" } else { "" },
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
    report_with_captures(entries, verifier, None, &[])
}

/// A run's capture: the link to its file (`captures` is the folder as the page reaches it),
/// one line per connection (who sent which certificate, which alert), and the known
/// divergences of its alerts: where the model's alert is not the real traffic server's, both.
fn capture_html(run: &ScenarioRun, captures: Option<&str>, divergences: &[Known], model: bool) -> String {
    let Some(capture) = &run.capture else { return String::new() };
    let mut out = String::from("<h4>capture</h4>");
    if let Some(base) = captures {
        let file = crate::capture::file_name(&run.id);
        let _ = write!(
            out,
            "<p class=\"capture\"><a href=\"{href}\" data-capture=\"{file}\">{file}</a> \
             ({n} TCP connections, {frames} frames, TLS secrets inside: <code>wireshark {file}</code>)</p>",
            href = esc(&format!("{}/{file}", base.trim_end_matches('/'))),
            file = esc(&file),
            n = capture.handshakes.len(),
            frames = capture.frames.len(),
        );
    }
    // The model's alerts that a known divergence says the real traffic server sends otherwise
    // (one entry per request, whichever divergence file holds it).
    let mut known: Vec<&Known> = Vec::new();
    for k in divergences.iter().filter(|k| model && k.scenario == run.id && k.field == "alert") {
        if !known.iter().any(|seen| seen.request == k.request) {
            known.push(k);
        }
    }
    let lines: Vec<String> = capture
        .handshakes
        .iter()
        .map(|h| {
            let mut line = h.line();
            for (who, _, code) in &h.alerts {
                let real = known.iter().find_map(|k| real_alert(&k.reason, *code));
                if let (true, Some((name, real_code))) = (who == "verifier", real) {
                    let _ =
                        write!(line, "; the real traffic server sends {name} ({real_code}) here (known divergence)");
                }
            }
            line
        })
        .collect();
    let _ = write!(out, "<pre class=\"handshakes\">{}</pre>", esc(&lines.join("\n")));
    for k in known {
        let _ = write!(
            out,
            "<p class=\"divergence\" data-divergence=\"alert\"><b>known divergence</b> ({request}): the model's \
             alert is not the real traffic server's: {reason}</p>",
            request = esc(&k.request),
            reason = esc(&k.reason),
        );
    }
    out
}

/// The alert a divergence's reason names other than the model's `code`, when the reason is
/// about that alert of the model's (it names `name (code)` too): the first other `name (NN)`.
fn real_alert(reason: &str, code: u8) -> Option<(&'static str, u8)> {
    if !reason.contains(&format!("{} ({code})", crate::capture::alert_name(code))) {
        return None;
    }
    reason.split('(').skip(1).find_map(|rest| {
        let n: u8 = rest.split(')').next()?.parse().ok()?;
        let name = crate::capture::alert_name(n);
        (n != code && name != "unknown" && reason.contains(&format!("{name} ({n})"))).then_some((name, n))
    })
}

/// The whole page, with each run's capture: `captures` is the folder of `--pcap` as the page
/// reaches it (the links), `divergences` the known divergences whose alerts the page shows
/// beside the model's.
pub fn report_with_captures(
    entries: &[BatchEntry],
    verifier: &str,
    captures: Option<&str>,
    divergences: &[Known],
) -> String {
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
                if let Some(step) = run.steps.iter().find(|s| !s.mismatches.is_empty()) {
                    let _ = write!(
                        out,
                        "<div class=\"failing\" data-failing-step=\"{n}\"><b>step {n} failed</b>: {title}<br>\
                         expected: <span class=\"expected\">{expected}</span><br>\
                         actual: <span class=\"actual\">{actual}</span></div>",
                        n = step.index,
                        title = esc(&step.title),
                        expected = esc(step.expected.as_deref().unwrap_or("-")),
                        actual = esc(&step.actual),
                    );
                }
                out.push_str("<h4>chains</h4>");
                out.push_str(&diagrams(run));
                out.push_str("<h4>fleet</h4>");
                out.push_str(&fleet_table(&run.snapshot));
                out.push_str(&capture_html(run, captures, divergences, verifier.starts_with("builtin")));
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
                    let _ = write!(out, "<h4>snapshot diff</h4>{}", diff_html(diff));
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
.cert.trusted{background:#e6f7e6}.cert.selfsigned{background:#fbe9e9}.cert.failed{background:#fdd;border:2px solid #c00}.why{color:#a00;font-weight:bold}\
pre.diff{white-space:pre-wrap;overflow-wrap:anywhere}.diff .del{color:#900;background:#fee;display:block}.diff .add{color:#060;background:#efe;display:block}\
.diff .hunk{color:#66a;display:block}.diff .same{display:block}.diff mark{background:#fb3;color:#000}.failing{border-left:4px solid #c00;padding:.3em .6em;background:#fff6f6}.arrow{font-size:.7em;color:#666}.scenario{border-top:2px solid #333;margin-top:2em}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_divergence_reason_gives_the_real_alert_beside_the_models() {
        let reason =
            "A name mismatch: OpenSSL sends internal_error (80); the model's rustls sends bad_certificate (42)";
        assert_eq!(real_alert(reason, 42), Some(("internal_error", 80)));
        assert_eq!(real_alert("no alert named here (see 1.2)", 42), None);
        // An unknown_ca line in the same scenario is not what the reason is about.
        assert_eq!(real_alert(reason, 48), None);
    }

    #[test]
    fn markdown_is_rendered_and_raw_html_is_shown_as_text() {
        let html = markdown("The **leaf** is `cucm/tomcat-ECDSA`.\n\n<script>alert(1)</script>\n\n- one\n- two\n");
        assert!(html.contains("<strong>leaf</strong>"), "{html}");
        assert!(html.contains("<code>cucm/tomcat-ECDSA</code>"), "{html}");
        assert!(html.contains("<li>one</li>"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn a_changed_line_marks_only_what_changed() {
        let (old, new) = inline_marks("error 18 at depth 0 <x>", "error 18 at depth 1 <x>");
        assert_eq!(old, "error 18 at depth <mark>0</mark> &lt;x&gt;");
        assert_eq!(new, "error 18 at depth <mark>1</mark> &lt;x&gt;");
    }

    #[test]
    fn diffs_are_coloured_by_line_kind_and_escaped() {
        let html = diff_html("--- snapshot\n+++ this run\n@@ -1,2 +1,2 @@\n same <a>\n-old tail x\n+old tail y\n");
        assert!(html.contains("<span class=\"hunk\">@@ -1,2 +1,2 @@</span>"), "{html}");
        assert!(html.contains("<span class=\"same\"> same &lt;a&gt;</span>"), "{html}");
        assert!(html.contains("<span class=\"del\">-old tail <mark>x</mark></span>"), "{html}");
        assert!(html.contains("<span class=\"add\">+old tail <mark>y</mark></span>"), "{html}");
    }
}
