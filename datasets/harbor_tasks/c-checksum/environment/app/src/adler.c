/* adler FILE: prints the Adler-32 checksum of FILE as 8 lowercase hex digits. */
#include <stdio.h>
#include <stdint.h>

#define MOD_ADLER 65535

static uint32_t adler32(FILE *f) {
    uint32_t a = 0, b = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        a = (a + (unsigned char)c) % MOD_ADLER;
        b = (b + a) % MOD_ADLER;
    }
    return (b << 16) | a;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: adler FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    printf("%08x\n", adler32(f));
    fclose(f);
    return 0;
}
