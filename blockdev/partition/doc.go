// Package partition reads the partition table of a disk image: MBR (with
// extended/logical partitions) or GPT (primary header, falling back to the
// backup header at the end of the disk). It only reads, never writes, and
// treats every byte as untrusted: a table whose partitions fall outside the
// disk, overlap its own metadata or loop is rejected or trimmed to its valid
// entries, never trusted.
//
// # Glossary
//
//   - Sector: the unit partition tables count in (LBA). MBR assumes 512
//     bytes; GPT is looked for at 512 and at 4096.
//   - MBR: the 512-byte master boot record: four primary entries and the
//     0x55AA signature.
//   - Extended partition: an MBR entry (type 0x05, 0x0F or 0x85) holding a
//     chain of EBRs, each describing one logical partition (numbered from 5).
//   - Protective MBR: an MBR whose one entry of type 0xEE covers the disk,
//     saying "read the GPT".
//   - GPT: the GUID partition table: a header at LBA 1 (CRC32-checked), an
//     array of entries (CRC32-checked), and a backup copy of both at the end
//     of the disk.
//   - Number: a partition's number as Linux names it (sda1, sda2, …): the
//     GPT entry index + 1, the MBR slot 1–4, or 5+ for logical partitions.
package partition
