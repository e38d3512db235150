//go:build amd64 && !purego

#include "textflag.h"

// func adamAVX2(p, grad, m, v *float32, n int, c *[6]float32)
// Eight elements per iteration, each operation rounded as AdamRef's Go
// code rounds it (no fused multiply-add).
TEXT ·adamAVX2(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ m+16(FP), R8
	MOVQ v+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), AX
	VBROADCASTSS 0(AX), Y10  // c1
	VBROADCASTSS 4(AX), Y11  // c2
	VBROADCASTSS 8(AX), Y12  // alpha
	VBROADCASTSS 12(AX), Y13 // eps
	VBROADCASTSS 16(AX), Y14 // 0x7fffffff
	VBROADCASTSS 20(AX), Y15 // 2^-126
	XORQ BX, BX

loop:
	VMOVUPS (SI)(BX*4), Y0 // g
	VMOVUPS (R8)(BX*4), Y1 // m
	VMOVUPS (R9)(BX*4), Y2 // v

	VSUBPS Y1, Y0, Y3 // g - m
	VMULPS Y10, Y3, Y3
	VADDPS Y3, Y1, Y1 // m + (g-m)*c1
	VMULPS Y0, Y0, Y4 // g*g
	VSUBPS Y2, Y4, Y4
	VMULPS Y11, Y4, Y4
	VADDPS Y4, Y2, Y2 // v + (g*g-v)*c2

	// Zero the lanes whose magnitude is below 2^-126 (NaN compares false).
	VANDPS  Y14, Y1, Y5
	VCMPPS  $1, Y15, Y5, Y5 // |m| < 2^-126
	VANDNPS Y1, Y5, Y1
	VANDPS  Y14, Y2, Y6
	VCMPPS  $1, Y15, Y6, Y6
	VANDNPS Y2, Y6, Y2
	VMOVUPS Y1, (R8)(BX*4)
	VMOVUPS Y2, (R9)(BX*4)

	VMULPS  Y12, Y1, Y7 // m*alpha
	VSQRTPS Y2, Y8
	VADDPS  Y13, Y8, Y8 // sqrt(v) + eps
	VDIVPS  Y8, Y7, Y7
	VMOVUPS (DI)(BX*4), Y9
	VSUBPS  Y7, Y9, Y9
	VMOVUPS Y9, (DI)(BX*4)

	ADDQ $8, BX
	CMPQ BX, CX
	JB   loop
	VZEROUPPER
	RET
