"""Jekyll's reading of a site, ported: front matter, dates, permalinks, Liquid."""
