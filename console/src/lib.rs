//! The web console's static assets, embedded in the binary so that the
//! server needs nothing else on disk (and no CDN: call centers often run on
//! closed networks). Plain ES modules and CSS: nothing to build.

pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One embedded file: its URL path, its type and its file under `assets/`.
macro_rules! assets {
    ($(($path:literal, $type:expr, $file:literal)),* $(,)?) => {
        &[$(Asset { path: $path, content_type: $type, body: include_bytes!(concat!("../assets/", $file)) }),*]
    };
}

pub const ASSETS: &[Asset] = assets![
    ("/", HTML, "index.html"),
    ("/console.css", CSS, "console.css"),
    ("/js/app.js", JS, "js/app.js"),
    ("/js/api.js", JS, "js/api.js"),
    ("/js/live.js", JS, "js/live.js"),
    ("/js/ui.js", JS, "js/ui.js"),
    ("/js/desk.js", JS, "js/desk.js"),
    ("/js/compensation.js", JS, "js/compensation.js"),
    ("/js/board.js", JS, "js/board.js"),
    ("/js/quality_board.js", JS, "js/quality_board.js"),
    ("/js/admin.js", JS, "js/admin.js"),
    ("/js/ticket_actions.js", JS, "js/ticket_actions.js"),
    ("/js/escalations.js", JS, "js/escalations.js"),
    // The public survey page (issue 7): no account, served at /survey.
    ("/survey", HTML, "survey.html"),
    ("/js/survey.js", JS, "js/survey.js"),
];

/// The asset served at `path`, if any.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        for module in ASSETS.iter().filter(|a| a.content_type == JS) {
            let text = std::str::from_utf8(module.body).expect("utf-8");
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let target = line
                    .rsplit_once("from '")
                    .and_then(|(_, rest)| rest.split_once('\''))
                    .map(|(path, _)| path)
                    .unwrap_or_else(|| panic!("{}: unreadable import {line}", module.path));
                let absolute = format!("/js/{}", target.trim_start_matches("./"));
                assert!(
                    asset(&absolute).is_some(),
                    "{} imports {target}, which is not embedded",
                    module.path
                );
            }
        }
    }
}
