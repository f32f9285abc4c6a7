"""The webshop split: a WebShop-compatible shop (catalogue, BM25 search, pages, reward) and its builder."""
