package synth

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"

	"gocv.io/x/gocv"
)

// mjpegAVI writes Motion-JPEG frames into a RIFF AVI file. gocv v0.31's
// VideoWriter cannot set the JPEG quality (OpenCV's ffmpeg MJPG writer gives
// about 39 dB PSNR on vtest.avi), so frames are encoded with
// gocv.IMEncodeWithParams at a chosen quality and muxed here. The file is a
// plain AVI 1.0 with an idx1 index, which OpenCV's ffmpeg backend reads with
// the right frame count and fps.
type mjpegAVI struct {
	f       *os.File
	w       *bufio.Writer
	width   int
	height  int
	rate    uint32 // fps = rate/scale
	scale   uint32
	quality int
	pos     int64 // bytes written so far
	movi    int64 // file offset of the 'movi' fourcc
	index   []aviIndex
	maxSize uint32
	buf     []byte
}

type aviIndex struct{ off, size uint32 }

func newMJPEGAVI(path string, width, height int, fps float64, quality int) (*mjpegAVI, error) {
	if width <= 0 || height <= 0 || fps <= 0 || math.IsInf(fps, 0) {
		return nil, fmt.Errorf("avi: bad size %dx%d or fps %v", width, height, fps)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	a := &mjpegAVI{f: f, w: bufio.NewWriterSize(f, 1<<20), width: width, height: height, quality: quality}
	if r := math.Round(fps); math.Abs(fps-r) < 1e-9 {
		a.rate, a.scale = uint32(r), 1
	} else {
		a.rate, a.scale = uint32(math.Round(fps*1000)), 1000
	}
	// Header with zero sizes and counts; patched by Close.
	a.writeHeaders(0, 0)
	a.fourcc("LIST")
	a.u32(0) // movi list size, patched
	a.movi = a.pos
	a.fourcc("movi")
	return a, nil
}

func (a *mjpegAVI) put(b []byte) {
	a.w.Write(b) //nolint:errcheck // the error is sticky and reported by Flush
	a.pos += int64(len(b))
}
func (a *mjpegAVI) fourcc(s string) { a.put([]byte(s)) }
func (a *mjpegAVI) u32(v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	a.put(b[:])
}
func (a *mjpegAVI) u16(v uint16) {
	var b [2]byte
	binary.LittleEndian.PutUint16(b[:], v)
	a.put(b[:])
}

// writeHeaders writes RIFF, hdrl, avih, strl, strh and strf.
func (a *mjpegAVI) writeHeaders(riffSize, frames uint32) {
	usPerFrame := uint32(math.Round(1e6 * float64(a.scale) / float64(a.rate)))
	a.fourcc("RIFF")
	a.u32(riffSize)
	a.fourcc("AVI ")
	a.fourcc("LIST")
	a.u32(4 + (8 + 56) + 8 + 4 + (8 + 56) + (8 + 40))
	a.fourcc("hdrl")
	a.fourcc("avih")
	a.u32(56)
	a.u32(usPerFrame)
	a.u32(0)    // max bytes per second
	a.u32(0)    // padding granularity
	a.u32(0x10) // AVIF_HASINDEX
	a.u32(frames)
	a.u32(0) // initial frames
	a.u32(1) // streams
	a.u32(a.maxSize)
	a.u32(uint32(a.width))
	a.u32(uint32(a.height))
	a.u32(0)
	a.u32(0)
	a.u32(0)
	a.u32(0)
	a.fourcc("LIST")
	a.u32(4 + (8 + 56) + (8 + 40))
	a.fourcc("strl")
	a.fourcc("strh")
	a.u32(56)
	a.fourcc("vids")
	a.fourcc("MJPG")
	a.u32(0) // flags
	a.u16(0) // priority
	a.u16(0) // language
	a.u32(0) // initial frames
	a.u32(a.scale)
	a.u32(a.rate)
	a.u32(0) // start
	a.u32(frames)
	a.u32(a.maxSize)
	a.u32(0xFFFFFFFF) // quality: default
	a.u32(0)          // sample size
	a.u16(0)
	a.u16(0)
	a.u16(uint16(a.width))
	a.u16(uint16(a.height))
	a.fourcc("strf")
	a.u32(40)
	a.u32(40)
	a.u32(uint32(a.width))
	a.u32(uint32(a.height))
	a.u16(1)  // planes
	a.u16(24) // bit count
	a.fourcc("MJPG")
	a.u32(uint32(a.width * a.height * 3))
	a.u32(0)
	a.u32(0)
	a.u32(0)
	a.u32(0)
}

// Write encodes one BGR frame as JPEG and appends it.
func (a *mjpegAVI) Write(frame gocv.Mat) error {
	if frame.Cols() != a.width || frame.Rows() != a.height {
		return fmt.Errorf("avi: frame %dx%d, video %dx%d", frame.Cols(), frame.Rows(), a.width, a.height)
	}
	nb, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, frame, []int{gocv.IMWriteJpegQuality, a.quality})
	if err != nil {
		return err
	}
	a.buf = append(a.buf[:0], nb.GetBytes()...)
	nb.Close()
	size := uint32(len(a.buf))
	a.index = append(a.index, aviIndex{off: uint32(a.pos - a.movi), size: size})
	a.fourcc("00dc")
	a.u32(size)
	a.put(a.buf)
	if size%2 == 1 {
		a.put([]byte{0})
	}
	a.maxSize = max(a.maxSize, size)
	if a.pos > math.MaxUint32-int64(16*len(a.index))-1<<20 {
		return errors.New("avi: file would exceed 4 GiB")
	}
	return nil
}

// Frames returns the number of frames written.
func (a *mjpegAVI) Frames() int { return len(a.index) }

// Close writes the index, patches sizes and counts, and closes the file.
func (a *mjpegAVI) Close() error {
	moviSize := uint32(a.pos - a.movi)
	a.fourcc("idx1")
	a.u32(uint32(16 * len(a.index)))
	for _, e := range a.index {
		a.fourcc("00dc")
		a.u32(0x10) // AVIIF_KEYFRAME
		a.u32(e.off)
		a.u32(e.size)
	}
	end := a.pos
	err := a.w.Flush()
	if err == nil {
		// Rewrite the headers with the final sizes.
		a.w.Reset(a.f)
		if _, err = a.f.Seek(0, 0); err == nil {
			a.pos = 0
			a.writeHeaders(uint32(end-8), uint32(len(a.index)))
			a.fourcc("LIST")
			a.u32(moviSize)
			err = a.w.Flush()
		}
	}
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	return err
}
