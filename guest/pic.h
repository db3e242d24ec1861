/* The legacy 8259 pair: the guest uses the IOAPIC, so the 8259s are initialised onto
 * vectors of their own (VS_VEC_PIC_BASE..+15, never the exceptions') and masked. */
#ifndef VS_GUEST_PIC_H
#define VS_GUEST_PIC_H

void vs_pic_disable(void);

#endif
