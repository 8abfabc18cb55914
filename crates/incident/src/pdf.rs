//! A small PDF 1.4 writer for text documents: A4 pages, the standard Helvetica fonts (no
//! embedding), WinAnsi encoding, word-wrapped lines. Enough for reports that people print and
//! that `pdftotext` reads back; characters outside Latin-1 are written as `?` (arrows as `->`).

const WIDTH: f32 = 595.0;
const HEIGHT: f32 = 842.0;
const MARGIN: f32 = 50.0;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Style {
    Regular(f32),
    Bold(f32),
}

/// A document being written.
#[derive(Debug)]
pub struct Document {
    title: String,
    pages: Vec<String>,
    current: String,
    y: f32,
}

/// Encodes `s` as a PDF literal string in WinAnsi (Latin-1 subset).
fn literal(s: &str) -> String {
    let mut o = String::from("(");
    for c in s.chars() {
        match c {
            '(' | ')' | '\\' => {
                o.push('\\');
                o.push(c);
            }
            '→' => o.push_str("->"),
            '\u{2013}' | '\u{2014}' => o.push('-'),
            '\u{2018}' | '\u{2019}' => o.push('\''),
            '\u{201c}' | '\u{201d}' => o.push('"'),
            ' '..='~' => o.push(c),
            c if (c as u32) >= 0xa0 && (c as u32) <= 0xff => {
                o.push_str(&format!("\\{:03o}", c as u32));
            }
            _ => o.push('?'),
        }
    }
    o.push(')');
    o
}

/// Approximate width of `s` in Helvetica at `size` (half an em per character, wider capitals).
fn width(s: &str, size: f32) -> f32 {
    s.chars()
        .map(|c| if c.is_ascii_uppercase() { 0.67 } else { 0.52 })
        .sum::<f32>()
        * size
}

fn wrap(s: &str, size: f32) -> Vec<String> {
    let max = WIDTH - 2.0 * MARGIN;
    let mut lines = Vec::new();
    for para in s.split('\n') {
        let mut line = String::new();
        for word in para.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if width(&candidate, size) <= max || line.is_empty() {
                line = candidate;
                // A single word wider than the page is cut.
                while width(&line, size) > max {
                    let cut: usize = (max / (0.67 * size)).max(1.0) as usize;
                    let head: String = line.chars().take(cut).collect();
                    let tail: String = line.chars().skip(cut).collect();
                    lines.push(head);
                    line = tail;
                }
            } else {
                lines.push(std::mem::take(&mut line));
                line = word.to_string();
            }
        }
        lines.push(line);
    }
    lines
}

impl Document {
    pub fn new(title: &str) -> Self {
        Document {
            title: title.to_string(),
            pages: Vec::new(),
            current: String::new(),
            y: HEIGHT - MARGIN,
        }
    }

    fn line(&mut self, s: &str, style: Style) {
        let (font, size) = match style {
            Style::Regular(z) => ("F1", z),
            Style::Bold(z) => ("F2", z),
        };
        let leading = size * 1.3;
        if self.y - leading < MARGIN {
            self.pages.push(std::mem::take(&mut self.current));
            self.y = HEIGHT - MARGIN;
        }
        self.y -= leading;
        self.current.push_str(&format!(
            "BT /{font} {size:.1} Tf {MARGIN:.1} {:.1} Td {} Tj ET\n",
            self.y,
            literal(s)
        ));
    }

    fn lines(&mut self, s: &str, style: Style) {
        let size = match style {
            Style::Regular(z) | Style::Bold(z) => z,
        };
        for l in wrap(s, size) {
            self.line(&l, style);
        }
    }

    pub fn heading(&mut self, s: &str) {
        self.lines(s, Style::Bold(16.0));
        self.gap();
    }
    pub fn subheading(&mut self, s: &str) {
        self.lines(s, Style::Bold(12.0));
    }
    pub fn bold(&mut self, s: &str) {
        self.lines(s, Style::Bold(9.0));
    }
    pub fn text(&mut self, s: &str) {
        self.lines(s, Style::Regular(9.0));
    }
    pub fn gap(&mut self) {
        self.y -= 6.0;
    }

    /// The finished PDF file.
    pub fn finish(mut self) -> Vec<u8> {
        if !self.current.is_empty() || self.pages.is_empty() {
            self.pages.push(std::mem::take(&mut self.current));
        }
        let n = self.pages.len();
        // Objects: 1 catalog, 2 pages, 3 and 4 fonts, 5 info, then page i: 6+2i, content 7+2i.
        let mut objects: Vec<String> = Vec::new();
        objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
        let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 6 + 2 * i)).collect();
        objects.push(format!(
            "<< /Type /Pages /Kids [{}] /Count {n} >>",
            kids.join(" ")
        ));
        objects.push(
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
                .into(),
        );
        objects.push(
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding \
             /WinAnsiEncoding >>"
                .into(),
        );
        objects.push(format!(
            "<< /Title {} /Producer (Parapet) >>",
            literal(&self.title)
        ));
        for (i, content) in self.pages.iter().enumerate() {
            objects.push(format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {WIDTH:.0} {HEIGHT:.0}] \
                 /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {} 0 R >>",
                7 + 2 * i
            ));
            objects.push(format!(
                "<< /Length {} >>\nstream\n{content}endstream",
                content.len()
            ));
        }
        let mut out = String::from("%PDF-1.4\n");
        let mut offsets = Vec::with_capacity(objects.len());
        for (i, o) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.push_str(&format!("{} 0 obj\n{o}\nendobj\n", i + 1));
        }
        let xref = out.len();
        out.push_str(&format!(
            "xref\n0 {}\n0000000000 65535 f \n",
            objects.len() + 1
        ));
        for off in offsets {
            out.push_str(&format!("{off:010} 00000 n \n"));
        }
        out.push_str(&format!(
            "trailer\n<< /Size {} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        ));
        out.into_bytes()
    }
}
