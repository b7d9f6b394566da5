"""The course: a web app of chapters (marimo notebooks) built on the glassformer library.

    catalog    the chapter list (from CURRICULUM.md), which are built
    store      learner progress, quiz answers and shared choices, in SQLite
    widgets    token strip, probability bars, attention heatmap, code panel, quiz
    server     `glassformer start`: the home page, the chapters, the progress API
    chapters/  one marimo notebook per chapter

The library never imports this package; chapters import the library.
"""
