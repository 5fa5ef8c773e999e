"""Bitmap codecs over numpy pixel arrays: pure functions, no I/O.

`planar` (RDP 6.0 bitmap compression, MS-RDPEGDI 2.2.2.5.1 and 3.1.9) and
`interleaved` (the RLE of MS-RDPBCGR 2.2.9.1.1.3.1.2.4) encode tiles of a
32-bit BGRX frame and decode them back; `freerdp` binds the same encoders
of FreeRDP's codec library through ctypes when it can be loaded; `tiles`
cuts rectangles into uniform blocks of tiles so each codec can vectorise
over many tiles at once.
"""
