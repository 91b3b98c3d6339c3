package pagetest

import (
	"image"
	"image/color"
	"testing"
)

func TestInkedPixels(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 10, 10))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	if n, total := InkedPixels(img, color.White); n != 0 || total != 100 {
		t.Errorf("white image: %d of %d inked, want 0 of 100", n, total)
	}
	img.Set(1, 1, color.Black)
	img.Set(2, 2, color.RGBA{R: 0xf8, G: 0xf8, B: 0xf8, A: 0xff}) // a faint tint is background
	img.Set(3, 3, color.RGBA{R: 0x1f, G: 0x6f, B: 0xb4, A: 0xff})
	if n, _ := InkedPixels(img, color.White); n != 2 {
		t.Errorf("%d inked pixels, want 2", n)
	}
}
