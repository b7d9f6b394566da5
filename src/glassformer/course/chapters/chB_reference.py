import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="B. Reference", css_file="course.css")


@app.cell
def _():
    import marimo as mo

    from glassformer.course import catalog, common, glossary
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    return catalog, common, glossary, mo, this


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo):
    mo.md(r"""
    Every term the course introduces, the symbols its math uses, and where to read more. Each term
    links to the chapter that teaches it.

    ## Glossary
    """)
    return


@app.cell
def _(mo):
    query = mo.ui.text(placeholder="search: a word, e.g. nucleus, bytes, greedy", label="Search the glossary",
                       full_width=True)
    query
    return (query,)


@app.cell
def _(catalog, glossary, mo, query):
    def _link(key: str) -> str:
        ch = catalog.chapter(key)
        return f"[{ch.key}. {ch.title}]({ch.path})"

    _found = glossary.search(query.value)
    _rows = "\n".join(f"| **{t.name}** | {t.meaning} | {_link(t.chapter)} |" for t in _found)
    mo.md(f"{len(_found)} of {len(glossary.TERMS)} terms"
          + (f" match “{query.value}”" if query.value.strip() else "") + ".\n\n"
          + (f"| term | meaning | taught in |\n|---|---|---|\n{_rows}" if _found else "No term matches."))
    return


@app.cell
def _(glossary, mo):
    _rows = "\n".join(f"| `{symbol}` | {meaning} |" for symbol, meaning in glossary.SYMBOLS)
    mo.md(f"## Symbols\n\nThe names used in shape comments, in the math and in the code.\n\n"
          f"| symbol | meaning |\n|---|---|\n{_rows}")
    return


@app.cell
def _(glossary, mo):
    _items = "\n".join(f"- {who}, *{title}* ({year})" for who, title, year in glossary.READING)
    mo.md(f"## Further reading\n\nThe papers behind the ideas in this course, by title and year.\n\n{_items}")
    return


@app.cell
def _(common, this):
    common.footer(this.key)
    return


if __name__ == "__main__":
    app.run()
