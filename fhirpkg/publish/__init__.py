"""Publishing: bundles, the NPM package, the R4B/R4 export, narratives, the site, push and diff."""
