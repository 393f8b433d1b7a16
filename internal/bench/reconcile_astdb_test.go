package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
)

// Asterisk's astdb is an SQLite 3 file (main/db.c). A value longer than an AMI line (1,024
// bytes: DBPut of a longer Val answers "Failed to parse message: line too long"), such as
// app_queue's Queue/PersistentMembers/<queue> key of 10,000 members (about 700 kB), cannot be
// written over AMI, nor over the CLI (512 bytes a command), nor through the dialplan (8 kB of
// application data). rcAstDB writes such a file directly, so that a restart of Asterisk with
// persistentmembers = yes loads the members in bulk. It knows just enough of the SQLite file
// format (https://www.sqlite.org/fileformat2.html) for a few rows, which is all the
// benchmark needs: the smaller keys go in over AMI afterwards.

// rcAstDBSchema is the table Asterisk creates (main/db.c, db_create_astdb).
const rcAstDBSchema = "CREATE TABLE astdb(key TEXT, value TEXT, PRIMARY KEY(key))"

const rcPageSize = 4096 // also the usable size: no reserved bytes per page

// rcAstDB returns an astdb file holding rows ("/FAMILY/key" → value): the astdb table and the
// index of its primary key. It fails when the rows do not fit the simple layout it writes (one
// index page and one interior table page: a few dozen rows of any length).
func rcAstDB(rows map[string]string) ([]byte, error) {
	keys := slices.Sorted(maps.Keys(rows))
	// Pages 1 (the schema), 2 (the table's root) and 3 (the index) are fixed; leaves and
	// overflow pages follow.
	f := &rcDBFile{pages: [][]byte{nil, make([]byte, rcPageSize), make([]byte, rcPageSize), make([]byte, rcPageSize)}}

	// The table: one cell per row, rowids 1, 2, … in key order.
	cells := make([][]byte, len(keys))
	for i, k := range keys {
		cells[i] = f.tableCell(int64(i+1), rcRecord(k, rows[k]))
	}
	var leaves [][][]byte // the cells of each leaf page
	var lastRowid []int64 // the largest rowid of each leaf
	used := rcPageSize    // forces a first leaf
	for i, c := range cells {
		if used+2+len(c) > rcPageSize {
			leaves = append(leaves, nil)
			lastRowid = append(lastRowid, 0)
			used = 8
		}
		leaves[len(leaves)-1] = append(leaves[len(leaves)-1], c)
		lastRowid[len(lastRowid)-1] = int64(i + 1)
		used += 2 + len(c)
	}
	switch len(leaves) {
	case 0:
		rcWritePage(f.pages[2], 0, 0x0d, nil, 0)
	case 1:
		rcWritePage(f.pages[2], 0, 0x0d, leaves[0], 0)
	default:
		// An interior root: a cell (left child, its largest rowid) per leaf but the last,
		// which is the right-most pointer.
		var inner [][]byte
		var right int
		for i, l := range leaves {
			right = f.newPage()
			rcWritePage(f.pages[right], 0, 0x0d, l, 0)
			if i < len(leaves)-1 {
				c := binary.BigEndian.AppendUint32(nil, uint32(right))
				inner = append(inner, rcVarint(c, uint64(lastRowid[i])))
			}
		}
		if err := rcFits(12, inner); err != nil {
			return nil, fmt.Errorf("astdb: the table's root: %w", err)
		}
		rcWritePage(f.pages[2], 0, 0x05, inner, uint32(right))
	}

	// The primary key's index: (key, rowid) in key order, on one leaf page.
	var idx [][]byte
	for i, k := range keys {
		rec := rcRecord(k, int64(i+1))
		if len(rec) > rcPageSize/4 {
			return nil, fmt.Errorf("astdb: key %.20q… too long for this writer", k)
		}
		idx = append(idx, append(rcVarint(nil, uint64(len(rec))), rec...))
	}
	if err := rcFits(8, idx); err != nil {
		return nil, fmt.Errorf("astdb: the index: %w", err)
	}
	rcWritePage(f.pages[3], 0, 0x0a, idx, 0)

	// The schema, on page 1 after the file header.
	page1 := make([]byte, rcPageSize)
	schema := [][]byte{
		rcTableLeafCell(1, rcRecord("table", "astdb", "astdb", int64(2), rcAstDBSchema)),
		rcTableLeafCell(2, rcRecord("index", "sqlite_autoindex_astdb_1", "astdb", int64(3), nil)),
	}
	rcWritePage(page1, 100, 0x0d, schema, 0)
	f.pages[1] = page1
	rcHeader(page1, len(f.pages)-1)

	var out bytes.Buffer
	for _, p := range f.pages[1:] {
		out.Write(p)
	}
	return out.Bytes(), nil
}

// rcDBFile is the file being written: pages[n] is page n (pages[0] is unused).
type rcDBFile struct{ pages [][]byte }

func (f *rcDBFile) newPage() int {
	f.pages = append(f.pages, make([]byte, rcPageSize))
	return len(f.pages) - 1
}

// tableCell is the leaf cell of a table row, its payload spilling to a chain of overflow
// pages when it is too long to stay on the leaf.
func (f *rcDBFile) tableCell(rowid int64, payload []byte) []byte {
	const (
		u        = rcPageSize
		maxLocal = u - 35
		minLocal = (u-12)*32/255 - 23
	)
	p := len(payload)
	local := p
	if p > maxLocal {
		local = minLocal + (p-minLocal)%(u-4)
		if local > maxLocal {
			local = minLocal
		}
	}
	cell := rcVarint(nil, uint64(p))
	cell = rcVarint(cell, uint64(rowid))
	cell = append(cell, payload[:local]...)
	if local == p {
		return cell
	}
	rest := payload[local:]
	first := f.newPage()
	cell = binary.BigEndian.AppendUint32(cell, uint32(first))
	for pg := first; ; {
		n := copy(f.pages[pg][4:], rest)
		rest = rest[n:]
		if len(rest) == 0 {
			return cell
		}
		next := f.newPage()
		binary.BigEndian.PutUint32(f.pages[pg], uint32(next))
		pg = next
	}
}

// rcTableLeafCell is a table leaf cell whose payload stays on the page.
func rcTableLeafCell(rowid int64, payload []byte) []byte {
	cell := rcVarint(nil, uint64(len(payload)))
	cell = rcVarint(cell, uint64(rowid))
	return append(cell, payload...)
}

// rcFits checks that cells fit on one page after a page header of hdr bytes.
func rcFits(hdr int, cells [][]byte) error {
	n := hdr
	for _, c := range cells {
		n += 2 + len(c)
	}
	if n > rcPageSize {
		return fmt.Errorf("%d bytes of cells do not fit a page of %d", n, rcPageSize)
	}
	return nil
}

// rcWritePage lays out a b-tree page whose header starts at off: kind (0x0d table leaf, 0x05
// table interior, 0x0a index leaf), the cell pointer array, and the cells from the page's end.
func rcWritePage(pg []byte, off int, kind byte, cells [][]byte, rightmost uint32) {
	hdr := 8
	if kind == 0x05 || kind == 0x02 {
		hdr = 12
		binary.BigEndian.PutUint32(pg[off+8:], rightmost)
	}
	pg[off] = kind
	binary.BigEndian.PutUint16(pg[off+3:], uint16(len(cells)))
	end := len(pg)
	for i, c := range cells {
		end -= len(c)
		copy(pg[end:], c)
		binary.BigEndian.PutUint16(pg[off+hdr+2*i:], uint16(end))
	}
	binary.BigEndian.PutUint16(pg[off+5:], uint16(end%65536))
}

// rcHeader writes the 100-byte file header of a database of n pages.
func rcHeader(pg []byte, n int) {
	copy(pg, "SQLite format 3\x00")
	binary.BigEndian.PutUint16(pg[16:], rcPageSize)
	pg[18], pg[19] = 1, 1                  // rollback journal
	pg[21], pg[22], pg[23] = 64, 32, 32    // payload fractions (fixed by the format)
	binary.BigEndian.PutUint32(pg[24:], 1) // change counter
	binary.BigEndian.PutUint32(pg[28:], uint32(n))
	binary.BigEndian.PutUint32(pg[40:], 1) // schema cookie
	binary.BigEndian.PutUint32(pg[44:], 4) // schema format
	binary.BigEndian.PutUint32(pg[56:], 1) // UTF-8
	binary.BigEndian.PutUint32(pg[92:], 1) // version-valid-for: the size above is right
	binary.BigEndian.PutUint32(pg[96:], 3046001)
}

// rcRecord encodes values (string, int64 or nil) in SQLite's record format.
func rcRecord(values ...any) []byte {
	var types, body []byte
	for _, v := range values {
		switch v := v.(type) {
		case nil:
			types = rcVarint(types, 0)
		case string:
			types = rcVarint(types, uint64(2*len(v)+13))
			body = append(body, v...)
		case int64:
			switch {
			case v >= -128 && v < 128:
				types = rcVarint(types, 1)
				body = append(body, byte(v))
			default:
				types = rcVarint(types, 6)
				body = binary.BigEndian.AppendUint64(body, uint64(v))
			}
		default:
			panic(fmt.Sprintf("rcRecord: %T", v))
		}
	}
	// The header's size counts itself: one byte while it is under 128 bytes.
	n := len(types) + 1
	if n >= 128 {
		n++
	}
	out := rcVarint(nil, uint64(n))
	out = append(out, types...)
	return append(out, body...)
}

// rcVarint appends v in SQLite's big-endian variable-length encoding (values below 2^56).
func rcVarint(b []byte, v uint64) []byte {
	var tmp [9]byte
	i := len(tmp) - 1
	tmp[i] = byte(v & 0x7f)
	for v >>= 7; v > 0; v >>= 7 {
		i--
		tmp[i] = byte(v&0x7f) | 0x80
	}
	return append(b, tmp[i:]...)
}
