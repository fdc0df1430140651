//! A person at the keyboard: open a page, type into labelled fields, press
//! buttons by their words, read what the page says, take a screenshot. Every
//! page opened or reached is also checked for the faults a person would hit.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, Locator};

use super::driver::Viewport;

pub struct Browser {
    pub client: Client,
    pub viewport: Viewport,
    base: String,
    shots: PathBuf,
}

/// Run in the page: every fault a person would meet, one line each. The page
/// itself runs no script (the CSP forbids it), so the shop must work without.
const AUDIT: &str = r#"
const faults = [];
const doc = document.documentElement;
if (doc.scrollWidth > window.innerWidth + 1) {
  faults.push(`page is ${doc.scrollWidth}px wide in a ${window.innerWidth}px window`);
}
for (const el of document.querySelectorAll('input, select, textarea')) {
  if (el.type === 'hidden') continue;
  const labelled = el.labels.length > 0 || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
  if (!labelled) faults.push(`field without a label: ${el.outerHTML}`);
}
for (const button of document.querySelectorAll('button')) {
  if (!button.form) faults.push(`button outside any form does nothing: ${button.outerHTML}`);
}
for (const el of document.querySelectorAll('.card, .card *, td, .summary span, .buy-box, .flash')) {
  if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === 'visible') {
    faults.push(`text overflows its box: <${el.tagName.toLowerCase()} class="${el.className}"> ${el.textContent.trim().slice(0, 60)}`);
  }
}
return faults;
"#;

impl Browser {
    pub fn new(client: Client, viewport: Viewport, base: String, shots: &Path) -> Browser {
        Browser {
            client,
            viewport,
            base,
            shots: shots.to_path_buf(),
        }
    }

    pub async fn open(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
        self.audit().await;
    }

    /// The path of the page shown now, e.g. `/orders/3`.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        url.path().to_string()
    }

    /// Types into the field whose `<label>` says `label` (so a field without
    /// a label cannot be filled, as a screen-reader user could not).
    pub async fn fill(&self, label: &str, value: &str) {
        let field = self.labelled(label).await;
        field.clear().await.expect("clearing a field");
        if !value.is_empty() {
            field.send_keys(value).await.expect("typing");
        }
    }

    async fn labelled(&self, label: &str) -> Element {
        let xpath = format!("//label[normalize-space()={}]", xpath_literal(label));
        let label_el = self.find(Locator::XPath(&xpath), label).await;
        let id = label_el
            .attr("for")
            .await
            .expect("label attribute")
            .unwrap_or_else(|| panic!("label {label:?} names no field"));
        self.find(Locator::Id(&id), label).await
    }

    /// Clicks the first button that reads `words`, then checks the page it leads to.
    pub async fn press(&self, words: &str) {
        let xpath = format!("//button[normalize-space()={}]", xpath_literal(words));
        let button = self.find(Locator::XPath(&xpath), words).await;
        self.navigate_by(button, words).await;
    }

    /// Presses a button inside the table row or card that mentions `within`.
    pub async fn press_in(&self, within: &str, words: &str) {
        let xpath = format!(
            "//*[self::tr or self::li][contains(., {})]//*[(self::button or self::a)][normalize-space()={}]",
            xpath_literal(within),
            xpath_literal(words)
        );
        let control = self.find(Locator::XPath(&xpath), words).await;
        self.navigate_by(control, words).await;
    }

    pub async fn follow(&self, link_text: &str) {
        let link = self.find(Locator::LinkText(link_text), link_text).await;
        self.navigate_by(link, link_text).await;
    }

    /// Clicks, then waits for the next page: a click returns before the
    /// browser has left the old one, which would otherwise be read again.
    async fn navigate_by(&self, element: Element, what: &str) {
        let old_page = self.find(Locator::Css("html"), "html").await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {what:?}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while old_page.tag_name().await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "[{}] clicking {what:?} on {} led nowhere",
                self.viewport.name,
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.audit().await;
    }

    /// Picks the radio button or checkbox whose label starts with `label`.
    pub async fn choose(&self, label: &str) {
        let xpath = format!(
            "//label[starts-with(normalize-space(), {})]",
            xpath_literal(label)
        );
        self.find(Locator::XPath(&xpath), label)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("choosing {label:?}: {e}"));
    }

    async fn find(&self, locator: Locator<'_>, what: &str) -> Element {
        match self.client.find(locator).await {
            Ok(element) => element,
            Err(e) => panic!(
                "[{}] no {what:?} on {} ({e})\n{}",
                self.viewport.name,
                self.path().await,
                self.text().await
            ),
        }
    }

    /// What a person reads on the page.
    pub async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits briefly for `expected` to be shown, since a click's navigation
    /// may still be settling.
    pub async fn expect_text(&self, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.text().await;
            if text.contains(expected) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "[{}] {} does not show {expected:?}; it shows:\n{text}",
                    self.viewport.name,
                    self.path().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the element with this id.
    pub async fn text_of(&self, id: &str) -> String {
        let element = self.find(Locator::Id(id), id).await;
        element
            .text()
            .await
            .expect("element text")
            .trim()
            .to_string()
    }

    pub async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let file = self
            .shots
            .join(format!("{}-{name}.png", self.viewport.name));
        std::fs::write(&file, png).unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
    }

    async fn audit(&self) {
        let faults = self
            .client
            .execute(AUDIT, vec![])
            .await
            .expect("running the page audit");
        let faults: Vec<String> = serde_json::from_value(faults).unwrap_or_default();
        assert!(
            faults.is_empty(),
            "[{}] {}:\n{}",
            self.viewport.name,
            self.path().await,
            faults.join("\n")
        );
    }

    /// Tabs through the first stops of the page and checks each shows where
    /// the keyboard is.
    pub async fn check_focus_rings(&self, stops: usize) {
        let tab: char = Key::Tab.into();
        for _ in 0..stops {
            let press = KeyActions::new("keyboard".into())
                .then(KeyAction::Down { value: tab })
                .then(KeyAction::Up { value: tab });
            self.client
                .perform_actions(press)
                .await
                .expect("pressing Tab");
            let ring = self
                .client
                .execute(
                    "const el = document.activeElement; const s = getComputedStyle(el); \
                     return [el.outerHTML.slice(0, 80), s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0];",
                    vec![],
                )
                .await
                .expect("reading the focus style");
            assert_eq!(
                ring[1], true,
                "[{}] no visible focus on {}",
                self.viewport.name, ring[0]
            );
        }
    }
}

/// An XPath string literal for text that may hold quotes.
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}
