"""The rankings the retrieval index (``memory.index``) fuses, one module each: ``lexical``
(BM25), ``vector`` (cosine, exact or through the IVF cells of ``ivf``) and ``graph`` (links
to the context's entities), combined by ``fusion`` (reciprocal rank). ``postings`` and
``topk`` are the array routines they share. None of them imports the index: it hands them
the columns they read."""
