// The package ships the very file the gateway serves at /static/converger.js: copied here
// before `npm pack` (prepack), so there is one source, gateway/static/converger.js.
const fs = require("fs");
const path = require("path");
const source = path.join(__dirname, "..", "..", "gateway", "static", "converger.js");
fs.copyFileSync(source, path.join(__dirname, "converger.js"));
