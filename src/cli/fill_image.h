#ifndef VS_CLI_FILL_IMAGE_H
#define VS_CLI_FILL_IMAGE_H

int cli_fill_image_main(int argc, char **argv);

#endif
