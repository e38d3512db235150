//go:build amd64 && !purego

#include "textflag.h"

// func reluAVX2(dst, src *float32, n int)
// max(x, 0) with MAXPS's second operand zero (so -0 gives +0), then the
// NaN lanes put back: Go's max keeps a NaN.
TEXT ·reluAVX2(SB), NOSPLIT, $0-24
	MOVQ   dst+0(FP), DI
	MOVQ   src+8(FP), SI
	MOVQ   n+16(FP), CX
	VXORPS Y15, Y15, Y15
	XORQ   BX, BX
	MOVQ   CX, DX
	ANDQ   $-32, DX
	JZ     tail

loop32:
	VMOVUPS   (SI)(BX*4), Y0
	VMOVUPS   32(SI)(BX*4), Y1
	VMOVUPS   64(SI)(BX*4), Y2
	VMOVUPS   96(SI)(BX*4), Y3
	VMAXPS    Y15, Y0, Y4
	VMAXPS    Y15, Y1, Y5
	VMAXPS    Y15, Y2, Y6
	VMAXPS    Y15, Y3, Y7
	VCMPPS    $3, Y0, Y0, Y8 // unordered: NaN
	VCMPPS    $3, Y1, Y1, Y9
	VCMPPS    $3, Y2, Y2, Y10
	VCMPPS    $3, Y3, Y3, Y11
	VBLENDVPS Y8, Y0, Y4, Y4
	VBLENDVPS Y9, Y1, Y5, Y5
	VBLENDVPS Y10, Y2, Y6, Y6
	VBLENDVPS Y11, Y3, Y7, Y7
	VMOVUPS   Y4, (DI)(BX*4)
	VMOVUPS   Y5, 32(DI)(BX*4)
	VMOVUPS   Y6, 64(DI)(BX*4)
	VMOVUPS   Y7, 96(DI)(BX*4)
	ADDQ      $32, BX
	CMPQ      BX, DX
	JB        loop32

tail:
	CMPQ BX, CX
	JAE  done

loop8:
	VMOVUPS   (SI)(BX*4), Y0
	VMAXPS    Y15, Y0, Y4
	VCMPPS    $3, Y0, Y0, Y8
	VBLENDVPS Y8, Y0, Y4, Y4
	VMOVUPS   Y4, (DI)(BX*4)
	ADDQ      $8, BX
	CMPQ      BX, CX
	JB        loop8

done:
	VZEROUPPER
	RET

// func reluGradAVX2(dz, out, grad *float32, n int)
// g AND (out ≠ 0), the comparison unordered-true so that NaN passes.
TEXT ·reluGradAVX2(SB), NOSPLIT, $0-32
	MOVQ   dz+0(FP), DI
	MOVQ   out+8(FP), SI
	MOVQ   grad+16(FP), R8
	MOVQ   n+24(FP), CX
	VXORPS Y15, Y15, Y15
	XORQ   BX, BX
	MOVQ   CX, DX
	ANDQ   $-32, DX
	JZ     gtail

gloop32:
	VCMPPS  $4, (SI)(BX*4), Y15, Y0 // NEQ_UQ
	VCMPPS  $4, 32(SI)(BX*4), Y15, Y1
	VCMPPS  $4, 64(SI)(BX*4), Y15, Y2
	VCMPPS  $4, 96(SI)(BX*4), Y15, Y3
	VANDPS  (R8)(BX*4), Y0, Y0
	VANDPS  32(R8)(BX*4), Y1, Y1
	VANDPS  64(R8)(BX*4), Y2, Y2
	VANDPS  96(R8)(BX*4), Y3, Y3
	VMOVUPS Y0, (DI)(BX*4)
	VMOVUPS Y1, 32(DI)(BX*4)
	VMOVUPS Y2, 64(DI)(BX*4)
	VMOVUPS Y3, 96(DI)(BX*4)
	ADDQ    $32, BX
	CMPQ    BX, DX
	JB      gloop32

gtail:
	CMPQ BX, CX
	JAE  gdone

gloop8:
	VCMPPS  $4, (SI)(BX*4), Y15, Y0
	VANDPS  (R8)(BX*4), Y0, Y0
	VMOVUPS Y0, (DI)(BX*4)
	ADDQ    $8, BX
	CMPQ    BX, CX
	JB      gloop8

gdone:
	VZEROUPPER
	RET

// func colSums8AVX2(sum, x *float32, rows, ld int)
TEXT ·colSums8AVX2(SB), NOSPLIT, $0-32
	MOVQ    sum+0(FP), DI
	MOVQ    x+8(FP), SI
	MOVQ    rows+16(FP), CX
	MOVQ    ld+24(FP), DX
	SHLQ    $2, DX
	VMOVUPS (DI), Y0

c8loop:
	VADDPS (SI), Y0, Y0
	ADDQ   DX, SI
	DECQ   CX
	JNZ    c8loop
	VMOVUPS Y0, (DI)
	VZEROUPPER
	RET

// func colSums32AVX2(sum, x *float32, rows, ld int)
// Four independent sums of eight columns each.
TEXT ·colSums32AVX2(SB), NOSPLIT, $0-32
	MOVQ    sum+0(FP), DI
	MOVQ    x+8(FP), SI
	MOVQ    rows+16(FP), CX
	MOVQ    ld+24(FP), DX
	SHLQ    $2, DX
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3

c32loop:
	VADDPS (SI), Y0, Y0
	VADDPS 32(SI), Y1, Y1
	VADDPS 64(SI), Y2, Y2
	VADDPS 96(SI), Y3, Y3
	ADDQ   DX, SI
	DECQ   CX
	JNZ    c32loop
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VZEROUPPER
	RET

// func addAVX2(dst, src *float32, n int)
TEXT ·addAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ BX, BX
	MOVQ CX, DX
	ANDQ $-32, DX
	JZ   atail

aloop32:
	VMOVUPS (DI)(BX*4), Y0
	VMOVUPS 32(DI)(BX*4), Y1
	VMOVUPS 64(DI)(BX*4), Y2
	VMOVUPS 96(DI)(BX*4), Y3
	VADDPS  (SI)(BX*4), Y0, Y0
	VADDPS  32(SI)(BX*4), Y1, Y1
	VADDPS  64(SI)(BX*4), Y2, Y2
	VADDPS  96(SI)(BX*4), Y3, Y3
	VMOVUPS Y0, (DI)(BX*4)
	VMOVUPS Y1, 32(DI)(BX*4)
	VMOVUPS Y2, 64(DI)(BX*4)
	VMOVUPS Y3, 96(DI)(BX*4)
	ADDQ    $32, BX
	CMPQ    BX, DX
	JB      aloop32

atail:
	CMPQ BX, CX
	JAE  adone

aloop8:
	VMOVUPS (DI)(BX*4), Y0
	VADDPS  (SI)(BX*4), Y0, Y0
	VMOVUPS Y0, (DI)(BX*4)
	ADDQ    $8, BX
	CMPQ    BX, CX
	JB      aloop8

adone:
	VZEROUPPER
	RET
