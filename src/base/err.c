#include "tam/err.h"

#include <string.h>

const char *tam_strerror(int err)
{
    switch (err) {
    case TAM_OK:
        return "success";
#define TAM_ERR_MSG_(name, msg) \
    case TAM_E##name:           \
        return msg;
        TAM_ERR_MAP(TAM_ERR_MSG_)
#undef TAM_ERR_MSG_
    default:
        break;
    }
    if (err < 0 && err > TAM_ERR_FIRST_) {
        return strerror(-err);
    }
    return "unknown error";
}

const char *tam_errname(int err)
{
    switch (err) {
    case TAM_OK:
        return "OK";
#define TAM_ERR_NAME_(name, msg) \
    case TAM_E##name:            \
        return "TAM_E" #name;
        TAM_ERR_MAP(TAM_ERR_NAME_)
#undef TAM_ERR_NAME_
    default:
        return "ESYS";
    }
}
