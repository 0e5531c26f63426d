// Package layering holds no code: its test enforces the import layering of
// STYLE.md across the whole module. See layering_test.go for the table.
//
// # Glossary
//
//   - Layer: a top-level area of the tree (dedup, blockdev, appliance, …)
//     with a rank. A package may import packages of a lower rank, and
//     packages of its own layer, never those of a higher or equal-rank
//     sibling layer.
//   - Project package: any package whose import path is "cairn" or starts
//     with "cairn/". Only those are checked; the standard library and
//     third-party modules are free for every layer.
package layering
