// The shared library's entry point: hands registration over to the extendr module.
void R_init_rookd_extendr(void *dll);

void R_init_rookd(void *dll) {
    R_init_rookd_extendr(dll);
}
