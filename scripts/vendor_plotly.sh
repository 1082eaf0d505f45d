#!/usr/bin/env bash
# Vendor plotly.js for the dashboard, at the version the pinned Python plotly package was
# built for (its figures are validated against that schema):
#  - plotly-basic.min.js, the official partial bundle (scatter, bar, pie): a quarter of
#    the full bundle's size, and without the map library, whose stylesheet the full
#    bundle injects inline and a strict Content-Security-Policy blocks;
#  - plotly.css, the global rules plotly.js would otherwise inject in a <style> element,
#    generated from the library's own build/plotcss.js. base.html links it with the id
#    plotly.js looks for, so plotly.js does not inject them.
# Run after upgrading plotly in requirements.txt; needs npm (the npm registry).
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-$(.venv/bin/python -c "import plotly.offline as o; print(o.get_plotlyjs_version())")}
out=static/vendor/plotly
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "plotly.js-basic-dist-min@$version" "plotly.js@$version" >/dev/null)
mkdir -p "$work/basic" "$work/full" "$out"
tar xzf "$work/plotly.js-basic-dist-min-$version.tgz" -C "$work/basic"
tar xzf "$work/plotly.js-$version.tgz" -C "$work/full" package/build/plotcss.js
cp "$work/basic/package/plotly-basic.min.js" "$out/plotly-basic.min.js"
cp "$work/basic/package/LICENSE" "$out/LICENSE"
node - "$work/full/package/build/plotcss.js" "$version" >"$out/plotly.css" <<'JS'
const fs = require("fs");
const [file, version] = process.argv.slice(2);
const source = fs.readFileSync(file, "utf8");
const literal = source.slice(source.indexOf("var rules = ") + "var rules = ".length, source.indexOf("};") + 1);
const rules = Function(`"use strict"; return (${literal});`)();
console.log(`/* plotly.js ${version} global styles, from build/plotcss.js (scripts/vendor_plotly.sh) */`);
for (const [selector, body] of Object.entries(rules)) {
  const full = selector.replace(/^,/, " ,").replace(/X/g, ".js-plotly-plot .plotly").replace(/Y/g, ".plotly-notifier");
  console.log(`${full}{${body}}`);
}
JS
echo "$version" >"$out/VERSION"
echo "vendored plotly.js $version into $out"
