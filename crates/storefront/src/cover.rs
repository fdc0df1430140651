//! Book covers drawn as SVG: the title and author on a colour derived from the
//! book, so every card looks like a book without storing any image.

/// A stable hue and pattern for each (title, author): FNV-1a over the text.
fn fingerprint(title: &str, author: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in title.bytes().chain([0]).chain(author.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Breaks `text` into at most `max_lines` lines of about `width` characters,
/// ending with an ellipsis when it does not fit.
fn wrap(text: &str, width: usize, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let word: String = if word.chars().count() > width {
            word.chars().take(width - 1).chain(['…']).collect()
        } else {
            word.to_string()
        };
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            last.push('…');
        }
    }
    lines
}

fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

pub fn svg(title: &str, author: &str) -> String {
    let print = fingerprint(title, author);
    let hue = print % 360;
    // Between the title (at most five lines, ending near y=165) and the author.
    let band = 195 + (print >> 12) % 30;
    let background = format!("hsl({hue}, 45%, 32%)");
    let accent = format!("hsl({}, 55%, 70%)", (hue + 180) % 360);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 200 300\" width=\"200\" height=\"300\" role=\"img\" aria-label=\"{}\">\
         <rect width=\"200\" height=\"300\" fill=\"{background}\"/>\
         <rect x=\"0\" y=\"{band}\" width=\"200\" height=\"6\" fill=\"{accent}\"/>\
         <rect x=\"12\" y=\"12\" width=\"176\" height=\"276\" fill=\"none\" stroke=\"{accent}\" stroke-width=\"1.5\"/>",
        escape_xml(&format!("{title} by {author}"))
    );
    let title_lines = wrap(title, 14, 5);
    let mut y = 110 - (title_lines.len() as i64 - 1) * 12;
    for line in &title_lines {
        svg.push_str(&format!(
            "<text x=\"100\" y=\"{y}\" text-anchor=\"middle\" font-family=\"Georgia, serif\" font-size=\"20\" font-weight=\"bold\" fill=\"#fff\">{}</text>",
            escape_xml(line)
        ));
        y += 25;
    }
    for (i, line) in wrap(author, 20, 2).iter().enumerate() {
        svg.push_str(&format!(
            "<text x=\"100\" y=\"{}\" text-anchor=\"middle\" font-family=\"Georgia, serif\" font-size=\"14\" font-style=\"italic\" fill=\"{accent}\">{}</text>",
            250 + i * 18,
            escape_xml(line)
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_escape_text_and_are_stable() {
        let a = svg("<script>alert(1)</script>", "Mallory & Co");
        assert!(!a.contains("<script>"));
        assert!(a.contains("&lt;script&gt;"));
        assert!(a.contains("Mallory &amp; Co"));
        assert_eq!(a, svg("<script>alert(1)</script>", "Mallory & Co"));
        assert_ne!(svg("Emma", "Jane Austen"), svg("Persuasion", "Jane Austen"));
    }

    #[test]
    fn long_titles_wrap_and_truncate() {
        let lines = wrap(
            "The Strange Case of Dr Jekyll and Mr Hyde and a very long subtitle indeed",
            14,
            5,
        );
        assert_eq!(lines.len(), 5);
        assert!(lines.iter().all(|l| l.chars().count() <= 15));
        assert!(lines[4].ends_with('…'));
        assert_eq!(
            wrap("Supercalifragilisticexpialidocious", 14, 5)[0]
                .chars()
                .count(),
            14
        );
    }
}
