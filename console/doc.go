// Package console is the cairn web console: static HTML, CSS and JS
// modules embedded in the binary and served by `cairn serve` at / on the
// API's listener. The page calls the same v1 API as every other client;
// it holds no server-side state of its own.
//
// # Glossary
//
//   - Shell: index.html, the one page; app.js renders every view into it.
//   - CSP: the Content-Security-Policy every console response carries:
//     scripts, styles and fetches from this origin only, nothing inline,
//     no frames, no forms posting anywhere.
package console
