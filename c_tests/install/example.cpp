// Built by `make test-install` against the installed rio.hpp:
//   g++ -std=c++17 example.cpp $(pkg-config --cflags --libs rio)
#include <rio.hpp>

#include <cstdio>
#include <string>

int main(int argc, char **argv) {
    try {
        rio::Runtime rt;
        rio::File f = rt.open(std::string(argc > 1 ? argv[1] : ".") + "/example-cpp.dat",
                              RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE);
        f.write_at("installed rio.hpp", 0);
        std::string buf(64, '\0');
        buf.resize(f.read_at(&buf[0], buf.size(), 0));
        std::printf("librio %s, backend %s: %s\n", rio::version(), rio::to_string(rt.backend()), buf.c_str());
        return buf == "installed rio.hpp" ? 0 : 1;
    } catch (const rio::error &e) {
        std::fprintf(stderr, "example: %s\n", e.what());
        return 1;
    }
}
