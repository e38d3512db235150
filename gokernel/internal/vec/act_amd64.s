//go:build amd64 && !purego

#include "textflag.h"

// The constants (AX) are actConsts: 32 bytes each, at k*32:
//   0 log2e  1 ln2 high  2 ln2 low  3..8 exp's polynomial  9 0.5  10 1
//   11 exp's largest argument  12 its smallest  13..17 tanh's polynomial
//   18 0.625  19 2  20 |x| mask  21 sign mask  22 126 (int32)

// EXP computes e^X (X a YMM register, clamped first) into R, as Exp32:
// n = floor(x·log2 e + 1/2), r = x - n·ln 2, e^x = 2·2^(n-1)·p(r) (so that
// n = 128 stays finite; below 2^-125 the result is 0). It uses Y12, Y13,
// Y14; Y10 and Y11 hold the largest and smallest arguments (kept in
// registers so that a NaN argument, the second source of MIN and MAX,
// passes through).
#define EXP(X, R) \
	VMINPS  X, Y10, X; \
	VMAXPS  X, Y11, X; \
	VMOVUPS 288(AX), Y12; \
	VFMADD231PS 0(AX), X, Y12; \
	VROUNDPS $1, Y12, Y12; \
	VFNMADD231PS 32(AX), Y12, X; \
	VFNMADD231PS 64(AX), Y12, X; \
	VMOVUPS 96(AX), R; \
	VFMADD213PS 128(AX), X, R; \
	VFMADD213PS 160(AX), X, R; \
	VFMADD213PS 192(AX), X, R; \
	VFMADD213PS 224(AX), X, R; \
	VFMADD213PS 256(AX), X, R; \
	VMULPS  X, X, Y13; \
	VFMADD213PS X, Y13, R; \
	VADDPS  320(AX), R, R; \
	VCVTTPS2DQ Y12, Y14; \
	VPADDD  704(AX), Y14, Y14; \
	VPSLLD  $23, Y14, Y14; \
	VMULPS  Y14, R, R; \
	VADDPS  R, R, R

// func sigmoidAVX2(dst, src *float32, n int, c *[23][8]float32)
// 1/(1+e^-x), eight values per iteration.
TEXT ·sigmoidAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ c+24(FP), AX
	VMOVUPS 352(AX), Y10 // largest argument
	VMOVUPS 384(AX), Y11 // smallest
	VMOVUPS 320(AX), Y15 // 1
	XORQ BX, BX

sigloop:
	VMOVUPS (SI)(BX*4), Y0
	VXORPS  672(AX), Y0, Y0 // -x
	EXP(Y0, Y1)
	VADDPS  Y15, Y1, Y1
	VDIVPS  Y1, Y15, Y1
	VMOVUPS Y1, (DI)(BX*4)
	ADDQ $8, BX
	CMPQ BX, CX
	JB   sigloop
	VZEROUPPER
	RET

// func tanhAVX2(dst, src *float32, n int, c *[23][8]float32)
// tanh x, eight values per iteration: x + x³·P(x²) where |x| < 0.625,
// sign(x)·(1 - 2/(e^(2|x|) + 1)) elsewhere.
TEXT ·tanhAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ c+24(FP), AX
	VMOVUPS 352(AX), Y10
	VMOVUPS 384(AX), Y11
	VMOVUPS 320(AX), Y15 // 1
	XORQ BX, BX

tanhloop:
	VMOVUPS (SI)(BX*4), Y0 // x
	VANDPS  640(AX), Y0, Y1 // |x|
	VANDPS  672(AX), Y0, Y2 // sign(x)
	// Large: 1 - 2/(e^(2|x|) + 1), with x's sign.
	VADDPS  Y1, Y1, Y3
	EXP(Y3, Y4)
	VADDPS  Y15, Y4, Y4
	VMOVUPS 608(AX), Y5
	VDIVPS  Y4, Y5, Y4
	VSUBPS  Y4, Y15, Y4
	VORPS   Y2, Y4, Y4
	// Small: x + x·s·P(s), s = x².
	VMULPS  Y0, Y0, Y5
	VMOVUPS 416(AX), Y6
	VFMADD213PS 448(AX), Y5, Y6
	VFMADD213PS 480(AX), Y5, Y6
	VFMADD213PS 512(AX), Y5, Y6
	VFMADD213PS 544(AX), Y5, Y6
	VMULPS  Y5, Y6, Y6
	VFMADD213PS Y0, Y0, Y6
	// |x| < 0.625: small, else large.
	VCMPPS  $1, 576(AX), Y1, Y7
	VBLENDVPS Y7, Y6, Y4, Y4
	VMOVUPS Y4, (DI)(BX*4)
	ADDQ $8, BX
	CMPQ BX, CX
	JB   tanhloop
	VZEROUPPER
	RET

// func expAVX2(dst, src *float32, n int, c *[23][8]float32)
// e^x, eight values per iteration.
TEXT ·expAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ c+24(FP), AX
	VMOVUPS 352(AX), Y10
	VMOVUPS 384(AX), Y11
	XORQ BX, BX

exploop:
	VMOVUPS (SI)(BX*4), Y0
	EXP(Y0, Y1)
	VMOVUPS Y1, (DI)(BX*4)
	ADDQ $8, BX
	CMPQ BX, CX
	JB   exploop
	VZEROUPPER
	RET
