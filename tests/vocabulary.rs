//! One vocabulary in every output (issue 15): a percentage is written `25 %` (a space before
//! the sign, as the plain-language reasons write `6.7 %`), never `25%`; a step is `step 2/3`
//! (as the live view's header), never `step 2 of 3`. Policy syntax (`max-increase: 10%`) is
//! what the user writes, not what canary says, and is not checked here.

/// Panics, naming `what` and quoting the line, where `text` writes a percentage or a step
/// another way. HTML is checked as the text a reader sees: tags, styles and scripts aside.
pub fn assert_one_vocabulary(what: &str, text: &str) {
    let seen = if what.ends_with(".html") {
        visible_text(text)
    } else {
        text.to_owned()
    };
    for line in seen.lines() {
        let chars: Vec<char> = line.chars().collect();
        for (i, pair) in chars.windows(2).enumerate() {
            assert!(
                !(pair[0].is_ascii_digit() && pair[1] == '%'),
                "{what}: `{}` writes a percentage without its space (\"25 %\"): {line}",
                chars[i.saturating_sub(6)..i + 2].iter().collect::<String>()
            );
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(4) {
            let number = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
            assert!(
                !(w[0]
                    .trim_start_matches(['(', '[', '"'])
                    .eq_ignore_ascii_case("step")
                    && number(w[1])
                    && w[2] == "of"
                    && number(w[3].trim_end_matches([',', ':', ')']))),
                "{what}: a step is `step k/N`, not `{} {} {} {}`: {line}",
                w[0],
                w[1],
                w[2],
                w[3]
            );
        }
    }
}

/// The text of an HTML page as a reader sees it: no tags, no `<style>`/`<script>` content.
fn visible_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let tag = &rest[open..];
        let skip_to = ["style", "script"]
            .iter()
            .find_map(|name| tag[1..].starts_with(name).then(|| format!("</{name}>")));
        rest = match skip_to {
            Some(end) => tag.find(&end).map_or("", |i| &tag[i + end.len()..]),
            None => tag.find('>').map_or("", |i| &tag[i + 1..]),
        };
        out.push(' ');
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::assert_one_vocabulary;

    #[test]
    fn the_one_vocabulary_is_accepted_and_the_others_are_not() {
        assert_one_vocabulary("a.txt", "step 2/3: canary at 25 % (max-increase 10 % of 3)");
        assert_one_vocabulary(
            "a.html",
            "<style>.bar{width:50%}</style><div style=\"width:25%\">25 %</div>",
        );
        for wrong in ["canary at 25%", "step 1 of 3 at 10 %", "(Step 2 of 3)"] {
            let caught = std::panic::catch_unwind(|| assert_one_vocabulary("a.txt", wrong));
            assert!(caught.is_err(), "{wrong}");
        }
    }
}
