// Validates an AsyncAPI document with the AsyncAPI initiative's own parser (@asyncapi/parser,
// installed by `make test` into the tools cache): `node validate.cjs PARSER_DIR DOCUMENT`.
// Exits 1 on any error or warning, printing each diagnostic with its path.
const path = require('path');
const fs = require('fs');

const [parserDir, document] = process.argv.slice(2);
const { Parser } = require(path.join(parserDir, 'node_modules', '@asyncapi', 'parser'));

(async () => {
    const { document: parsed, diagnostics } = await new Parser().parse(fs.readFileSync(document, 'utf8'));
    for (const d of diagnostics) {
        console.error(`${['error', 'warning', 'info', 'hint'][d.severity]} ${d.code}: ${d.message} at ${d.path.join('.')}`);
    }
    const problems = diagnostics.filter((d) => d.severity <= 1);
    if (!parsed || problems.length > 0) {
        console.error(`${document}: ${problems.length} problem(s)`);
        process.exit(1);
    }
    console.log(`${document}: valid AsyncAPI ${parsed.version()}, ${parsed.allChannels().length} channels, ${parsed.allMessages().length} messages`);
})().catch((e) => {
    console.error(e);
    process.exit(1);
});
