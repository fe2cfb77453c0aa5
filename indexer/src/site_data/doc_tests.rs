use super::*;

#[test]
fn markdown_renders_code_as_code_and_drops_front_matter() {
    let html = render_markdown(
        "---\nname: x\nauthor: y\n---\n\n# Title\n\nSome *text*.\n\n```mlld\n/show @x < 1\n```\n",
    );
    assert!(html.contains("<h1>Title</h1>"), "{html}");
    assert!(html.contains("<em>text</em>"), "{html}");
    assert!(
        html.contains("<pre><code>/show @x &lt; 1\n</code></pre>"),
        "{html}"
    );
    assert!(!html.contains("author: y"), "{html}");
}

#[test]
fn markdown_is_sanitised() {
    let hostile = concat!(
        "<script>alert(1)</script>\n\n",
        "<img src=\"https://evil.example/pixel.png\" onerror=\"alert(2)\">\n\n",
        "<a href=\"https://ok.example/\" onclick=\"alert(3)\">ok</a> ",
        "[js](javascript:alert(4)) [data](data:text/html,x) [rel](./other.mld)\n\n",
        "![tracker](https://evil.example/t.gif \"t\")\n\n",
        "<style>body{display:none}</style><iframe src=\"https://evil.example\"></iframe>\n",
        "<div style=\"position:fixed\" class=\"x\">styled</div>\n",
    );
    let html = render_markdown(hostile);
    for banned in [
        "<script",
        "alert(1)",
        "<img",
        "onerror",
        "onclick",
        "javascript:",
        "data:text",
        "<style",
        "<iframe",
        "style=",
        "./other.mld",
    ] {
        assert!(!html.contains(banned), "{banned} in {html}");
    }
    // The image is a link to it, not a load.
    assert!(
        html.contains(
            "<a href=\"https://evil.example/t.gif\" title=\"t\" rel=\"nofollow noopener\">image: tracker</a>"
        ),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"https://ok.example/\" rel=\"nofollow noopener\">ok</a>"),
        "{html}"
    );
    assert!(html.contains("styled"), "{html}");
}

#[test]
fn exports_are_read_from_every_export_block() {
    let content = "/exe @a() = js { return 1 }\n/export { @a, @b }\n  export {\n  c,\n  @d as @e, @a, 9bad, @f-x\n}\n/var @x = \"/export { @no }\"\n";
    assert_eq!(exports(content), ["@a", "@b", "@c", "@e"]);
    assert!(exports("/exe @a() = 1\n").is_empty());
    assert!(
        exports("/export { @a").is_empty(),
        "an unclosed list names nothing"
    );
}

#[test]
fn readme_is_the_top_level_one() {
    assert_eq!(
        readme(["a/README.md", "readme.md", "x.mld"]),
        Some("readme.md")
    );
    assert_eq!(readme(["docs/Readme.md", "x.mld"]), Some("docs/Readme.md"));
    assert_eq!(readme(["x.mld", "README.txt"]), None);
}
